// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

namespace lockunit {

// Lets a backend call that waits on I/O give way to a stop request (invariant 4: SIGTERM is
// acted on within 100 ms in every state). Every wait in a backend polls fd() too; when it is
// readable the backend calls stopRequested(), and abandons the call with Errc::Interrupted if
// that returns true (otherwise it keeps waiting).
class Interrupt {
public:
    virtual ~Interrupt() = default;
    virtual int fd() const = 0;
    virtual bool stopRequested() = 0;
};

// An Interrupt that never fires, for callers with nothing to be interrupted by.
class NoInterrupt final : public Interrupt {
public:
    int fd() const override { return -1; }
    bool stopRequested() override { return false; }
};

} // namespace lockunit
