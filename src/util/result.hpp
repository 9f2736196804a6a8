// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace lockunit {

// What went wrong, coarse enough for the supervisor to choose an exit code and a reaction.
enum class Errc {
    Busy,        // the lock is held by someone else
    Lost,        // the backend says our lease is gone
    Unavailable, // the backend could not be reached or did not answer in time
    Refused,     // the backend answered with a permanent error (auth, protocol, wrong server)
    Config,      // bad configuration
    Usage,       // bad command line
    Interrupted, // a stop request arrived while waiting on I/O
    System,      // a local system call failed
};

struct Error {
    Errc code;
    std::string message;
};

// A value or an Error. Errors are values inside lockunit; exceptions stop at library edges.
template <typename T> class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error error) : v_(std::move(error)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() & { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    const T& value() const& { return std::get<0>(v_); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const Error& error() const { return std::get<1>(v_); }

private:
    std::variant<T, Error> v_;
};

template <> class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), ok_(false) {}

    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const Error& error() const { return error_; }

private:
    Error error_{Errc::System, {}};
    bool ok_ = true;
};

inline Error makeError(Errc code, std::string message) {
    return Error{code, std::move(message)};
}

// "what: <strerror(err)>", for a failed system call: err is errno unless given (a call that
// returns its error, such as sd_pid_get_unit()'s -r or SO_ERROR). Call it before anything else
// can change errno.
inline std::string errnoMessage(const std::string& what, int err = errno) {
    return what + ": " + std::strerror(err);
}

} // namespace lockunit
