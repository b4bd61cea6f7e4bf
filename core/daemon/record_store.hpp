// The daemon's record files: <state-dir>/daemon/<id>.json holds one record
// per line, the last complete line current.
//
// The first record of a sandbox is written through a temporary file and
// rename; later transitions append a whole new record with one write(2)
// (O_APPEND), which takes no new inode and no rename. On journal-less ext4
// (this project's CI guests) every inode allocation scans the recently
// deleted ones: at 300 sandboxes/s that was 12 % of the daemon's CPU. A
// line cut short by a crash lacks its newline or does not parse, so the
// record before it stands (last_record), and an append that fails part-way
// is followed by a full rewrite, never by another append onto the
// fragment. After max_record_lines records or max_record_file_bytes the
// file is rewritten with only the current one, so it stays far below what
// is read back.
//
// This layer knows lines, not what is in them (sandbox_record.hpp).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/error.hpp"

namespace nucleus::core::daemon {

constexpr int max_record_lines = 8;
constexpr size_t max_record_file_bytes = 1 << 20;
constexpr size_t max_record_read_bytes = 4 << 20;

// What one sandbox's file holds: its complete lines and their bytes.
// lines == 0: no file yet, or one that does not end in a whole, valid
// record (a torn tail), which must be rewritten rather than appended to.
struct RecordFile {
    int lines = 0;
    size_t bytes = 0;
};

// The last complete line of `text` that parses as a JSON object (discarded
// when there is none), and how many lines may be appended after: the
// number of complete lines when the file ends in that record, else 0.
struct LastRecord {
    nlohmann::json record = nlohmann::json(nlohmann::json::value_t::discarded);
    int appendable_lines = 0;
};
LastRecord last_record(std::string_view text);

// Whether a record of `line_bytes` may be appended to `file` (else the
// file is rewritten).
bool can_append(const RecordFile& file, size_t line_bytes);

class RecordStore {
public:
    explicit RecordStore(std::string dir) : dir_(std::move(dir)) {}

    const std::string& dir() const { return dir_; }
    std::string path(std::string_view id) const;

    // Makes `line` (one record and its newline) the sandbox's current
    // record, appending or rewriting as above, and updates `file`.
    Status write(std::string_view id, std::string_view line, RecordFile& file) const;
    void remove(std::string_view id) const;

    struct Stored {
        std::string id;  // from the file name
        nlohmann::json record;  // discarded when the file holds none
        RecordFile file;
    };
    // Every <id>.json's last complete record; leftover temporary files
    // (a crash between write and rename) are removed. Blocking: start-up only.
    std::vector<Stored> load() const;

private:
    std::string dir_;
};

}  // namespace nucleus::core::daemon
