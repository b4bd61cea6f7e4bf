#include "core/cli/spec_flags.hpp"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/spec.hpp"
#include "io/bytes_json.hpp"

namespace nucleus::core::cli {

using nlohmann::json;

void add_spec_flags(CLI::App& app, SpecFlags& flags) {
    for (const auto& key : spec_keys()) {
        if (key.flags.empty()) continue;
        std::string names(key.flags), help(key.help), group(group_title(key.group));
        std::string k(key.key);
        CLI::Option* option = nullptr;
        switch (key.shape) {
            case KeyShape::Switch:
                option = app.add_flag(names, flags.switches[k], help);
                break;
            case KeyShape::Value:
                option = app.add_option(names, flags.values[k], help);
                break;
            case KeyShape::List:
                // One value per occurrence, as Docker's repeatable flags.
                option = app.add_option(names, flags.lists[k], help)->allow_extra_args(false);
                break;
        }
        if (!key.value_name.empty()) option->type_name(std::string(key.value_name));
        option->group(group);
    }
    app.add_option("--config", flags.config,
                   "Read the request from FILE.json or FILE.toml (keys: long flag names in snake_case)")
        ->type_name("FILE")
        ->group("Request documents");
    app.add_option("--config-fd", flags.config_fd, "Read the request (JSON or TOML) from descriptor N")
        ->type_name("N")
        ->group("Request documents");
}

namespace {

Result<std::string> read_descriptor(const std::string& text) {
    char* end = nullptr;
    long fd = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || fd < 0 || fd > INT32_MAX)
        return Error::plain("--config-fd: \"" + text + "\" is not a file descriptor number");
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(static_cast<int>(fd), buf, sizeof buf)) != 0;) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::from_errno("reading --config-fd " + text);
        out.append(buf, static_cast<size_t>(n));
        if (out.size() > (1 << 20)) return Error::plain("--config-fd: larger than 1 MiB");
    }
    return out;
}

Result<json> read_config(const SpecFlags& flags, const CLI::App& app) {
    json doc = json::object();
    if (app.count("--config")) {
        auto parsed = load_config_file(flags.config);
        if (!parsed) return std::move(parsed).error().wrap("reading --config");
        doc = std::move(*parsed);
    }
    if (app.count("--config-fd")) {
        NUCLEUS_TRY_ASSIGN(auto text, read_descriptor(flags.config_fd));
        auto first = text.find_first_not_of(" \t\r\n");
        bool is_json = first != std::string::npos && (text[first] == '{' || text[first] == '[');
        auto parsed = parse_config_text(text, is_json ? "json" : "toml", "config-fd " + flags.config_fd);
        if (!parsed) return std::move(parsed).error();
        if (!parsed->is_object()) return Error::plain("--config-fd: the request must be an object");
        doc.update(*parsed);
    }
    if (!doc.is_object()) return Error::plain("--config: the request must be an object of settings");
    return doc;
}

}  // namespace

Result<json> spec_document(const SpecFlags& flags, const CLI::App& app, const std::vector<std::string>& command) {
    NUCLEUS_TRY_ASSIGN(auto doc, read_config(flags, app));
    for (const auto& key : spec_keys()) {
        if (key.flags.empty() || !app.count(long_flag(key))) continue;
        std::string k(key.key);
        switch (key.shape) {
            case KeyShape::Switch:
                doc[k] = flags.switches.at(k);
                break;
            case KeyShape::Value:
                doc[k] = io::bytes_json(flags.values.at(k));
                break;
            case KeyShape::List:
                doc[k] = io::bytes_json_array(flags.lists.at(k));
                break;
        }
    }
    if (!command.empty()) doc["command"] = io::bytes_json_array(command);
    return doc;
}

}  // namespace nucleus::core::cli
