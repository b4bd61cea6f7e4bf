#include "io/http_client.hpp"

#include <http_parser.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "io/unique_fd.hpp"

namespace nucleus::io::http {

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

Result<unique_fd> connect_to(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof address.sun_path)
        return Error::plain("socket path \"" + path + "\" is empty or too long");
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return Error::from_errno("socket(AF_UNIX)");
    while (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) < 0) {
        if (errno == EINTR) continue;
        int code = errno;
        if (code == ENOENT || code == ECONNREFUSED)
            return Error::from_errno("cannot connect to " + path + " (is `nucleus daemon` running?)", code);
        if (code == EACCES)
            return Error::from_errno("cannot connect to " + path + " (is your user in the socket's group?)", code);
        return Error::from_errno("cannot connect to " + path, code);
    }
    return fd;
}

// send(2) with MSG_NOSIGNAL: a daemon that hung up is an error, not SIGPIPE.
Status send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return Error::from_errno("sending the request");
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
    return {};
}

struct ResponseParser {
    Response response;
    const std::function<bool(std::string_view)>* on_data = nullptr;  // streaming 2xx bodies
    bool in_value = false;
    bool complete = false;
    bool stopped = false;  // on_data asked to stop
    bool too_large = false;

    static ResponseParser& self(http_parser* p) { return *static_cast<ResponseParser*>(p->data); }

    static int on_header_field(http_parser* p, const char* at, size_t length) {
        auto& s = self(p);
        if (s.in_value || s.response.headers.empty()) s.response.headers.emplace_back();
        s.in_value = false;
        s.response.headers.back().first.append(at, length);
        return 0;
    }
    static int on_header_value(http_parser* p, const char* at, size_t length) {
        auto& s = self(p);
        s.in_value = true;
        s.response.headers.back().second.append(at, length);
        return 0;
    }
    static int on_headers_complete(http_parser* p) {
        self(p).response.status = static_cast<int>(p->status_code);
        return 0;
    }
    static int on_body(http_parser* p, const char* at, size_t length) {
        auto& s = self(p);
        int status = s.response.status;
        if (s.on_data && status >= 200 && status < 300) {
            if (!(*s.on_data)(std::string_view(at, length))) {
                s.stopped = true;
                return -1;
            }
            return 0;
        }
        if (s.response.body.size() + length > max_response_body) {
            s.too_large = true;
            return -1;
        }
        s.response.body.append(at, length);
        return 0;
    }
    static int on_message_complete(http_parser* p) {
        self(p).complete = true;
        http_parser_pause(p, 1);
        return 0;
    }
};

Result<Response> exchange(const std::string& socket_path, std::string_view method, std::string_view target,
                          std::string_view body, std::string_view content_type,
                          const std::function<bool(std::string_view)>* on_data) {
    auto fd = connect_to(socket_path);
    if (!fd) return std::move(fd).error();

    std::string head;
    head.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
    head.append("Host: nucleus\r\nUser-Agent: nucleus-cli\r\nConnection: close\r\n");
    if (!body.empty() || method == "POST" || method == "PUT") {
        if (!body.empty()) head.append("Content-Type: ").append(content_type).append("\r\n");
        head.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
    }
    head.append("\r\n");
    // A daemon that refuses the connection (503 when busy) may answer and
    // hang up before reading the request: its answer is still read below.
    auto sent = send_all(fd->get(), head);
    if (sent) sent = send_all(fd->get(), body);

    http_parser_settings settings;
    http_parser_settings_init(&settings);
    settings.on_header_field = ResponseParser::on_header_field;
    settings.on_header_value = ResponseParser::on_header_value;
    settings.on_headers_complete = ResponseParser::on_headers_complete;
    settings.on_body = ResponseParser::on_body;
    settings.on_message_complete = ResponseParser::on_message_complete;
    http_parser parser;
    http_parser_init(&parser, HTTP_RESPONSE);
    ResponseParser state;
    state.on_data = on_data;
    parser.data = &state;

    char buffer[16 << 10];
    while (!state.complete) {
        ssize_t n = ::read(fd->get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            if (!sent) return std::move(sent).error().wrap(socket_path);
            return Error::from_errno("reading the response from " + socket_path);
        }
        // n == 0 tells the parser about EOF (a body delimited by close ends there).
        http_parser_execute(&parser, &settings, buffer, static_cast<size_t>(n));
        if (state.complete || state.stopped) break;
        if (state.too_large)
            return Error::plain("the response from " + socket_path + " is larger than " +
                                std::to_string(max_response_body) + " bytes");
        if (HTTP_PARSER_ERRNO(&parser) != HPE_OK)
            return Error::plain(std::string("malformed response from ") + socket_path + ": " +
                                http_errno_description(HTTP_PARSER_ERRNO(&parser)));
        if (n == 0) {
            if (!sent) return std::move(sent).error().wrap(socket_path);
            return Error::plain("the daemon at " + socket_path + " closed the connection before a complete response");
        }
    }
    return std::move(state.response);
}

}  // namespace

std::string Response::header(std::string_view name) const {
    for (const auto& [key, value] : headers)
        if (iequals(key, name)) return value;
    return "";
}

Result<Response> request(const std::string& socket_path, std::string_view method, std::string_view target,
                         std::string_view body, std::string_view content_type) {
    return exchange(socket_path, method, target, body, content_type, nullptr);
}

Result<Response> request_stream(const std::string& socket_path, std::string_view method, std::string_view target,
                                const std::function<bool(std::string_view)>& on_data, std::string_view body,
                                std::string_view content_type) {
    return exchange(socket_path, method, target, body, content_type, &on_data);
}

}  // namespace nucleus::io::http
