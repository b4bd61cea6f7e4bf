#include "io/error.hpp"

#include <cstring>

namespace nucleus {

Error Error::from_errno(std::string message, int code) { return Error{code, std::move(message)}; }

Error Error::wrap(std::string_view context) && {
    std::string joined;
    joined.reserve(context.size() + 2 + message.size());
    joined.append(context).append(": ").append(message);
    message = std::move(joined);
    return std::move(*this);
}

std::string Error::describe() const {
    if (code == 0) return message;
    return message + ": " + std::strerror(code);
}

}  // namespace nucleus
