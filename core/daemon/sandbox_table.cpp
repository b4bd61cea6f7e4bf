#include "core/daemon/sandbox_table.hpp"

#include <algorithm>

namespace nucleus::core::daemon {

Entry& SandboxTable::add(std::unique_ptr<Entry> entry) {
    Entry& e = *entry;
    entries_[e.record.id] = std::move(entry);
    return e;
}

Entry* SandboxTable::get(const std::string& id) const {
    auto it = entries_.find(id);
    return it == entries_.end() ? nullptr : it->second.get();
}

Result<Entry*> SandboxTable::find(std::string_view ref) const {
    if (auto it = entries_.find(ref); it != entries_.end()) return it->second.get();
    const std::string quoted = "'" + std::string(ref) + "'";
    if (!looks_like_id_prefix(ref)) {
        for (const auto& [id, e] : entries_)
            if (e->record.name == ref) return e.get();
        return Error::plain("no sandbox " + quoted);
    }
    // Ids are sorted: the sandboxes with this prefix are adjacent.
    auto first = entries_.lower_bound(ref);
    if (first == entries_.end() || !first->first.starts_with(ref)) return Error::plain("no sandbox " + quoted);
    auto next = std::next(first);
    if (next != entries_.end() && next->first.starts_with(ref))
        return Error::plain(quoted + " names more than one sandbox; give more of the id");
    return first->second.get();
}

bool SandboxTable::name_taken(std::string_view name) const {
    return std::any_of(entries_.begin(), entries_.end(),
                       [&](const auto& kv) { return kv.second->record.name == name; });
}

size_t SandboxTable::count(Phase phase) const {
    return static_cast<size_t>(std::count_if(entries_.begin(), entries_.end(),
                                             [&](const auto& kv) { return kv.second->record.phase == phase; }));
}

std::vector<std::string> SandboxTable::oldest_exited(size_t n) const {
    std::vector<std::pair<std::string, std::string>> exited;  // (finished_at, id)
    for (const auto& [id, e] : entries_)
        if (e->record.phase == Phase::Exited) exited.emplace_back(e->record.finished_at, id);
    std::sort(exited.begin(), exited.end());
    std::vector<std::string> ids;
    for (size_t i = 0; i < n && i < exited.size(); ++i) ids.push_back(exited[i].second);
    return ids;
}

}  // namespace nucleus::core::daemon
