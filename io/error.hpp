// One error type for every kernel-facing layer.
//
// An Error carries the errno (0 when the failure is not the kernel's) and a
// message that names the failed step and its context, innermost last added
// first: wrap("creating cgroup") on "mkdir /sys/fs/cgroup/x" reads
// "creating cgroup: mkdir /sys/fs/cgroup/x: Permission denied".
// Errors are values (Result<T>), never exceptions, below core/; they are
// logged once, where they are handled.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace nucleus {

struct Error {
    int code = 0;  // errno, or 0 for a non-kernel failure
    std::string message;  // "step: context", without the strerror text

    static Error from_errno(std::string message, int code = errno);
    static Error plain(std::string message) { return Error{0, std::move(message)}; }

    // Prefixes context: "context: <message>".
    Error wrap(std::string_view context) &&;
    // The full text for people: message plus strerror(code) when code != 0.
    std::string describe() const;
};

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : state_(std::move(value)) {}
    Result(Error error) : state_(std::move(error)) {}

    bool ok() const noexcept { return state_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    T& value() & { return std::get<0>(state_); }
    T&& value() && { return std::get<0>(std::move(state_)); }
    const T& value() const& { return std::get<0>(state_); }
    T* operator->() { return &std::get<0>(state_); }
    T& operator*() & { return std::get<0>(state_); }

    const Error& error() const& { return std::get<1>(state_); }
    Error&& error() && { return std::get<1>(std::move(state_)); }

    Result wrap(std::string_view context) && {
        if (ok()) return std::move(*this);
        return std::move(std::get<1>(state_)).wrap(context);
    }

private:
    std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), failed_(true) {}

    bool ok() const noexcept { return !failed_; }
    explicit operator bool() const noexcept { return ok(); }
    const Error& error() const& { return error_; }
    Error&& error() && { return std::move(error_); }

    Result wrap(std::string_view context) && {
        if (ok()) return {};
        return std::move(error_).wrap(context);
    }

private:
    Error error_;
    bool failed_ = false;
};

using Status = Result<void>;

}  // namespace nucleus

// Propagates a failed Result from the enclosing function (which returns a
// Result of any type). Evaluates `expr` once.
#define NUCLEUS_TRY(expr)                                                        \
    do {                                                                         \
        auto nucleus_try_result_ = (expr);                                       \
        if (!nucleus_try_result_) return std::move(nucleus_try_result_).error(); \
    } while (0)

#define NUCLEUS_CONCAT_(a, b) a##b
#define NUCLEUS_CONCAT(a, b) NUCLEUS_CONCAT_(a, b)

// Binds the value of a Result, or propagates its error:
//   NUCLEUS_TRY_ASSIGN(auto fd, io::open_fd(path, O_RDONLY));
// At most one per line (the temporary is named after the line).
#define NUCLEUS_TRY_ASSIGN(decl, expr)                                                                             \
    auto NUCLEUS_CONCAT(nucleus_try_, __LINE__) = (expr);                                                          \
    if (!NUCLEUS_CONCAT(nucleus_try_, __LINE__)) return std::move(NUCLEUS_CONCAT(nucleus_try_, __LINE__)).error(); \
    decl = std::move(*NUCLEUS_CONCAT(nucleus_try_, __LINE__))
