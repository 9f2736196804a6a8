// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/etcd/http_response.hpp"

#include <string>

namespace lockunit::etcd {

ResponseParser::ResponseParser() {
    http_parser_settings_init(&settings_);
    settings_.on_headers_complete = onHeadersComplete;
    settings_.on_body = onBodyData;
    settings_.on_message_complete = onMessageComplete;
    reset();
}

void ResponseParser::reset() {
    http_parser_init(&parser_, HTTP_RESPONSE);
    parser_.data = this;
    started_ = headersDone_ = complete_ = keepAlive_ = false;
}

int ResponseParser::onHeadersComplete(http_parser* p) {
    auto* self = static_cast<ResponseParser*>(p->data);
    self->headersDone_ = true;
    self->keepAlive_ = http_should_keep_alive(p) != 0;
    return 0;
}

int ResponseParser::onBodyData(http_parser* p, const char* at, size_t length) {
    auto* self = static_cast<ResponseParser*>(p->data);
    if (self->onBody) self->onBody(std::string_view(at, length));
    return 0;
}

int ResponseParser::onMessageComplete(http_parser* p) {
    auto* self = static_cast<ResponseParser*>(p->data);
    self->complete_ = true;
    // Stop right here: whatever follows is not part of this response.
    http_parser_pause(p, 1);
    return 0;
}

Error ResponseParser::malformed() const {
    auto code = HTTP_PARSER_ERRNO(&parser_);
    return makeError(Errc::Refused,
                     std::string("malformed HTTP response (") + http_errno_description(code) + ")");
}

Result<void> ResponseParser::feed(std::string_view data) {
    if (data.empty()) return {};
    if (complete_) return makeError(Errc::Refused, "unexpected data after an HTTP response");
    started_ = true;
    size_t used = http_parser_execute(&parser_, &settings_, data.data(), data.size());
    auto code = HTTP_PARSER_ERRNO(&parser_);
    if (code == HPE_PAUSED) {
        if (used < data.size())
            return makeError(Errc::Refused, "unexpected data after an HTTP response");
        return {};
    }
    if (code != HPE_OK) return malformed();
    return {};
}

Result<void> ResponseParser::feedEof() {
    if (complete_) return {};
    if (!started_) return makeError(Errc::Unavailable, "connection closed before an answer");
    http_parser_execute(&parser_, &settings_, nullptr, 0);
    if (complete_) return {};
    return makeError(Errc::Unavailable, headersDone_
                                            ? "connection closed in the middle of the body"
                                            : "connection closed in the middle of the headers");
}

} // namespace lockunit::etcd
