// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

// One HTTP/1.1 response after another on a connection, parsed by http-parser (nodejs'
// http-parser 2.9, Debian's libhttp-parser): the status line, the headers, a body framed by
// Content-Length, by chunks or by the end of the connection. The body comes out as it arrives,
// with the chunk framing removed, so a streaming answer (etcd's watch) can be read line by line.

#include <functional>
#include <http_parser.h>
#include <string_view>

#include "util/result.hpp"

namespace lockunit::etcd {

class ResponseParser {
public:
    ResponseParser();
    ResponseParser(const ResponseParser&) = delete;
    ResponseParser& operator=(const ResponseParser&) = delete;

    // Body bytes as they arrive, chunk framing removed. Called from inside feed().
    std::function<void(std::string_view)> onBody;

    // Ready for the next response on the same connection.
    void reset();
    // Feeds bytes read from the connection. Errc::Refused for a malformed response, or for
    // bytes after a complete one (we never pipeline); the connection is unusable then.
    Result<void> feed(std::string_view data);
    // The peer closed the connection: completes a body that runs to the close, or says what was
    // cut short (Errc::Unavailable).
    Result<void> feedEof();

    bool started() const { return started_; } // some of the response has arrived
    bool headersDone() const { return headersDone_; }
    bool complete() const { return complete_; }
    int status() const { return headersDone_ ? static_cast<int>(parser_.status_code) : 0; }
    // The connection may carry the next request (decided with the headers).
    bool keepAlive() const { return keepAlive_; }

private:
    static int onHeadersComplete(http_parser* p);
    static int onBodyData(http_parser* p, const char* at, size_t length);
    static int onMessageComplete(http_parser* p);
    Error malformed() const;

    http_parser parser_{};
    http_parser_settings settings_{};
    bool started_ = false, headersDone_ = false, complete_ = false, keepAlive_ = false;
};

} // namespace lockunit::etcd
