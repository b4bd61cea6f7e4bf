#include "isolation/closure_root.hpp"

#include <sys/stat.h>

#include "isolation/kernel_abi.hpp"
#include "isolation/landlock.hpp"

namespace nucleus::isolation {

const std::vector<std::string>& closure_host_etc_entries() {
    static const std::vector<std::string> entries = {"resolv.conf", "ssl", "ca-certificates", "localtime"};
    return entries;
}

std::string_view closure_nsswitch_conf() {
    return "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n"
           "protocols: files\nservices: files\n";
}

uint64_t closure_path_rights(const std::string& path, int abi) {
    struct stat st {};
    if (::stat(path.c_str(), &st) < 0) return 0;
    uint64_t rights = landlock_rights(LandlockAccess::ReadExec, abi);
    if (S_ISDIR(st.st_mode)) return rights;
    if (S_ISREG(st.st_mode)) return rights & (kabi::landlock_fs::read_file | kabi::landlock_fs::execute);
    return 0;
}

std::vector<std::string> store_parents(const std::string& store_dir) {
    std::vector<std::string> parents;
    for (size_t pos = store_dir.find('/', 1); pos != std::string::npos; pos = store_dir.find('/', pos + 1))
        parents.push_back(store_dir.substr(0, pos));
    return parents;
}

}  // namespace nucleus::isolation
