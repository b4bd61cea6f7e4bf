// `nucleus daemon`: one reactor thread supervising every sandbox, with the
// HTTP/JSON API of docs/API.md on a unix socket.
//
//   <state-dir>/daemon/<id>.json     the daemon's record of each sandbox:
//                                    its spec document, phase, pid and start
//                                    time, exit; one JSON record per line,
//                                    the last complete line current: created
//                                    by temp file + rename, each transition
//                                    appended with one write (see persist())
//   <state-dir>/sandboxes/<id>.json  the lifecycle's cleanup record (the
//                                    cgroup to remove), as `nucleus run`'s,
//                                    but out of reach of `nucleus run`'s gc
//   <log-dir>/<id>.{stdout,stderr}.log (+ .1 after rotation)
//
// Sandboxes do not die with the daemon. A restarted daemon re-adopts those
// still alive (pidfd_open, checked against the recorded start time and
// cgroup), records the end of those that exited meanwhile and removes
// whatever belongs to no live sandbox.
#pragma once

namespace nucleus::core {

int daemon_main(int argc, char** argv);

}  // namespace nucleus::core
