// Opening a file the runtime appends to on a user's behalf (events, audit
// records), in a directory others may write to.
#pragma once

#include <string>

#include "io/unique_fd.hpp"

namespace nucleus::io {

// O_APPEND, created 0640 if missing, never through a symlink (O_NOFOLLOW),
// only a regular file. As fs.protected_regular does for O_CREAT, a file in a
// sticky directory that belongs neither to us nor to the directory's owner
// is refused: another user planted it there for us to write into.
Result<unique_fd> open_append_file(const std::string& path);

}  // namespace nucleus::io
