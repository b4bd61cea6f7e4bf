#include "core/cli.hpp"

int main(int argc, char** argv) { return nucleus::core::main_cli(argc, argv); }
