#include <signal.h>

#include "core/cli.hpp"

int main(int argc, char** argv) {
    // A reader of our output that goes away must not kill the supervisor
    // (and strand the sandbox's state): writes fail with EPIPE instead. The
    // sandbox's child resets every disposition before exec.
    ::signal(SIGPIPE, SIG_IGN);
    return nucleus::core::main_cli(argc, argv);
}
