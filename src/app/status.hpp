// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "config/config.hpp"

namespace lockunit {

// How `lockunit status` prints: text; one JSON object per lock (--json); OpenMetrics, the
// exposition format for scrapers; or the same metrics in Prometheus' text format 0.0.4, the
// form node_exporter's textfile collector reads (it rejects OpenMetrics' info type).
enum class StatusFormat { Text, Json, OpenMetrics, Prometheus };

// One lock as `status` reports it: what its backend said, or why it could not say it.
struct LockReport {
    std::string lock;
    std::string backend; // the URL's scheme: the metrics' label
    std::string url;     // the text's "on URL"
    long capacity = 1;   // `holders`
    Result<LockState> state = makeError(Errc::Unavailable, "not asked");
    int errorExit = 69; // the exit code for that error
};

// `lockunit status`: who holds each lock, since when, with which token; the lease's time left
// and the number of waiters where the backend can tell. Text or JSON: exit 0 if every lock
// answered (one lock: 0 held, 3 free), else the first unanswered lock's code (69 unreachable),
// its message on stderr. The metric formats exit 0: an unreachable backend is `lockunit_up 0`.
int printStatus(const std::vector<LockReport>& reports, StatusFormat format);

// The metrics of these locks, in OpenMetrics or Prometheus text form (exposed for the tests).
std::string formatMetrics(const std::vector<LockReport>& reports, StatusFormat format);

} // namespace lockunit
