// SPDX-License-Identifier: LGPL-2.1-or-later
// The check of each kind of value: a duration, a count, a signal, a choice, a size… Each check
// takes the value as it arrived, stores it in the Config with where it came from, or returns
// the complaint ("expected …, found …") that the loader puts after the value's file:line:col.
#include "config/values.hpp"

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdlib>

#include "config/scope_properties.hpp"
#include "util/exitcode.hpp"
#include "util/signals.hpp"

namespace lockunit {

std::string showRaw(const RawValue& raw) {
    if (auto s = std::get_if<std::string>(&raw)) return "'" + *s + "'";
    if (auto i = std::get_if<long long>(&raw)) return "the integer " + std::to_string(*i);
    if (auto b = std::get_if<bool>(&raw)) return *b ? "true" : "false";
    return "an array";
}

namespace {

std::optional<std::string> textOf(const RawValue& raw, std::string& out) {
    if (auto s = std::get_if<std::string>(&raw)) {
        out = *s;
        return std::nullopt;
    }
    return "expected a string, found " + showRaw(raw);
}

} // namespace

// A span as systemd.time(7) reads it; a TOML integer is seconds, as a bare number is.
Result<Duration> spanOf(const RawValue& raw) {
    if (auto i = std::get_if<long long>(&raw)) return parseSpan(std::to_string(*i));
    if (auto s = std::get_if<std::string>(&raw)) return parseSpan(*s);
    return makeError(Errc::Config, "not a time span");
}

std::string spanComplaint(const std::string& found, bool allowInfinity, const Error& why) {
    return std::string("expected a duration such as \"500ms\", \"15s\" or \"1m 30s\"") +
           (allowInfinity ? " (or \"infinity\")" : "") + ", found " + found + " (" + why.message +
           ")";
}

Apply durationOption(Setting<Duration> Config::*member, bool allowInfinity) {
    return [=](Config& c, const RawValue& raw, const Origin& o) -> std::optional<std::string> {
        auto d = spanOf(raw);
        if (d && !allowInfinity && *d == kInfinity)
            d = makeError(Errc::Config, "it may not be infinite");
        if (!d) return spanComplaint(showRaw(raw), allowInfinity, d.error());
        c.*member = {*d, o};
        return std::nullopt;
    };
}

Apply countOption(Setting<long long> Config::*member, long long min, long long max) {
    return [=](Config& c, const RawValue& raw, const Origin& o) -> std::optional<std::string> {
        long long n = 0;
        if (auto i = std::get_if<long long>(&raw))
            n = *i;
        else if (auto s = std::get_if<std::string>(&raw);
                 s && !s->empty() && std::all_of(s->begin(), s->end(), ::isdigit) && s->size() < 10)
            n = std::atoll(s->c_str());
        else
            return "expected a whole number, found " + showRaw(raw);
        if (n < min || n > max)
            return "expected a number from " + std::to_string(min) + " to " + std::to_string(max) +
                   ", found " + std::to_string(n);
        c.*member = {n, o};
        return std::nullopt;
    };
}

Apply stringOption(Setting<std::string> Config::*member) {
    return [=](Config& c, const RawValue& raw, const Origin& o) -> std::optional<std::string> {
        std::string text;
        if (auto err = textOf(raw, text)) return err;
        if (text.empty()) return std::string("expected a non-empty string, found ''");
        c.*member = {text, o};
        return std::nullopt;
    };
}

Apply signalOption(Setting<int> Config::*member) {
    return [=](Config& c, const RawValue& raw, const Origin& o) -> std::optional<std::string> {
        std::string text;
        if (auto err = textOf(raw, text)) return err;
        auto sig = parseSignal(text);
        if (!sig)
            return "expected a signal name such as \"SIGTERM\" or \"INT\", found " + showRaw(raw);
        c.*member = {*sig, o};
        return std::nullopt;
    };
}

Apply signalListOption(Setting<std::vector<int>> Config::*member) {
    return [=](Config& c, const RawValue& raw, const Origin& o) -> std::optional<std::string> {
        std::string joined;
        if (auto s = std::get_if<std::string>(&raw))
            joined = *s;
        else if (auto a = std::get_if<std::vector<std::string>>(&raw))
            for (const auto& e : *a)
                joined += (joined.empty() ? "" : ",") + e;
        else
            return "expected a list of signals such as \"SIGHUP,SIGUSR1\", found " + showRaw(raw);
        auto list = parseSignalList(joined);
        if (!list)
            return "expected a list of signals such as \"SIGHUP,SIGUSR1\", found " + showRaw(raw);
        for (int sig : *list)
            if (sig == SIGKILL || sig == SIGSTOP || sig == SIGCHLD)
                return signalName(sig) + " cannot be forwarded";
        c.*member = {*list, o};
        return std::nullopt;
    };
}

template <typename E>
Apply enumOption(Setting<E> Config::*member, std::vector<std::pair<const char*, E>> choices) {
    return [=](Config& c, const RawValue& raw, const Origin& o) -> std::optional<std::string> {
        std::string text, names;
        for (const auto& [n, v] : choices)
            names += std::string(names.empty() ? "" : ", ") + n;
        if (textOf(raw, text)) return "expected one of " + names + ", found " + showRaw(raw);
        for (const auto& [n, v] : choices)
            if (text == n) {
                c.*member = {v, o};
                return std::nullopt;
            }
        return "expected one of " + names + ", found " + showRaw(raw);
    };
}

Apply flagOption(Setting<bool> Config::*member) {
    return [=](Config& c, const RawValue& raw, const Origin& o) -> std::optional<std::string> {
        if (auto b = std::get_if<bool>(&raw)) {
            c.*member = {*b, o};
            return std::nullopt;
        }
        return "expected true or false, found " + showRaw(raw);
    };
}

Apply commandOption() {
    return [](Config& c, const RawValue& raw, const Origin& o) -> std::optional<std::string> {
        auto a = std::get_if<std::vector<std::string>>(&raw);
        if (!a || a->empty() || a->front().empty())
            return "expected a non-empty array of strings such as [\"/usr/bin/x\", \"--flag\"], "
                   "found " +
                   (a ? std::string("an empty array") : showRaw(raw));
        c.command = {*a, o};
        return std::nullopt;
    };
}

// A size such as "512M", "2G", "1048576" or "infinity" (MemoryMax=, TasksMax= style).
Apply patternOption(Setting<std::string> Config::*member, const char* expected,
                    std::function<bool(const std::string&)> valid) {
    return [=](Config& c, const RawValue& raw, const Origin& o) -> std::optional<std::string> {
        std::string text;
        if (auto i = std::get_if<long long>(&raw))
            text = std::to_string(*i);
        else if (textOf(raw, text))
            return std::string("expected ") + expected + ", found " + showRaw(raw);
        if (!valid(text)) return std::string("expected ") + expected + ", found " + showRaw(raw);
        c.*member = {text, o};
        return std::nullopt;
    };
}

// Repeatable: the file's list first, then each --property, in order (a later one wins in
// systemd, as with systemd-run -p).
Apply propertyOption() {
    return [](Config& c, const RawValue& raw, const Origin& o) -> std::optional<std::string> {
        std::vector<std::string> items;
        if (auto s = std::get_if<std::string>(&raw))
            items.push_back(*s);
        else if (auto a = std::get_if<std::vector<std::string>>(&raw))
            items = *a;
        else
            return "expected \"NAME=VALUE\" or an array of them, found " + showRaw(raw);
        for (const auto& item : items) {
            if (auto p = parseScopeProperty(item); !p) return p.error().message;
            c.properties.value.push_back(item);
        }
        c.properties.origin = o;
        return std::nullopt;
    };
}

// The busy code may be any exit code but lockunit's own, which mean something else.
Apply exitCodeOption(Setting<long long> Config::*member) {
    auto range = countOption(member, 0, 255);
    return [=](Config& c, const RawValue& raw, const Origin& o) -> std::optional<std::string> {
        if (auto err = range(c, raw, o)) return err;
        for (int own : {exitcode::Usage, exitcode::Unavailable, exitcode::Software,
                        exitcode::Config, exitcode::Lost})
            if ((c.*member).value == own)
                return std::to_string(own) +
                       " is one of lockunit's own exit codes (64, 69, 70, 78, 79); choose another";
        return std::nullopt;
    };
}

// The enums of the option table.
template Apply enumOption(Setting<NotifyMode> Config::*,
                          std::vector<std::pair<const char*, NotifyMode>>);
template Apply enumOption(Setting<ScopeMode> Config::*,
                          std::vector<std::pair<const char*, ScopeMode>>);
template Apply enumOption(Setting<ForwardTo> Config::*,
                          std::vector<std::pair<const char*, ForwardTo>>);

} // namespace lockunit
