// SPDX-License-Identifier: LGPL-2.1-or-later
#include <csignal>
#include <cstdio>
#include <fstream>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/command_line.hpp"
#include "config/load.hpp"
#include "config/options.hpp"

using namespace lockunit;
using namespace std::chrono_literals;

namespace {

class ConfigFile : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/lockunit-config-XXXXXX";
        dir_ = mkdtemp(tmpl);
        path_ = dir_ + "/reports.toml";
    }
    void TearDown() override {
        std::remove(path_.c_str());
        rmdir(dir_.c_str());
    }
    Result<Config> load(const std::string& toml, std::vector<std::string> args = {},
                        bool needCommand = true) {
        std::ofstream(path_) << toml;
        std::vector<std::string> argv{"lockunit", "--conf=" + path_};
        argv.insert(argv.end(), args.begin(), args.end());
        std::vector<char*> ptrs;
        for (auto& a : argv)
            ptrs.push_back(a.data());
        auto cli = parseCommandLine(static_cast<int>(ptrs.size()), ptrs.data());
        if (!cli) return cli.error();
        return loadConfig(*cli, needCommand);
    }
    std::string dir_, path_;
};

Result<CommandLine> parse(std::vector<std::string> argv) {
    argv.insert(argv.begin(), "lockunit");
    std::vector<char*> ptrs;
    for (auto& a : argv)
        ptrs.push_back(a.data());
    return parseCommandLine(static_cast<int>(ptrs.size()), ptrs.data());
}

} // namespace

// Skips a test that needs a backend's config table in a build without that backend.
#define NEEDS_BACKEND(name)                                                                    \
    if (std::string_view(LOCKUNIT_ENABLED_BACKENDS).find(name) == std::string_view::npos)      \
    GTEST_SKIP() << "built without the " name " backend (-D" name "=disabled)"

TEST_F(ConfigFile, DefaultsFollowTheDesign) {
    auto c = load("command = [\"/bin/true\"]\n");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->name.value, "reports"); // the file's stem
    EXPECT_EQ(c->ttl.value, 15s);
    EXPECT_EQ(c->renew.value, 5s); // ttl / 3
    EXPECT_EQ(c->wait.value, kInfinity);
    EXPECT_EQ(c->holders.value, 1);
    EXPECT_EQ(c->stopSignal.value, SIGTERM);
    EXPECT_EQ(c->stopTimeout.value, 5s);
    EXPECT_EQ(c->forwardSignals.value, (std::vector<int>{SIGHUP, SIGUSR1, SIGUSR2}));
    EXPECT_EQ(c->notify.value, NotifyMode::Standby);
    EXPECT_EQ(c->scope.value, ScopeMode::Auto);
    EXPECT_EQ(c->backend.value.rfind("file://", 0), 0u);
}

TEST_F(ConfigFile, CommandLineWinsOverTheFile) {
    auto c = load("ttl = \"30s\"\nname = \"fromfile\"\ncommand = [\"/bin/true\"]\n",
                  {"--ttl=20s", "--name", "fromcli"});
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->ttl.value, 20s);
    EXPECT_EQ(c->ttl.origin.describe(), "--ttl");
    EXPECT_EQ(c->name.value, "fromcli");
}

TEST_F(ConfigFile, UnknownKeyIsAnErrorWithItsPosition) {
    auto c = load("ttl = \"20s\"\n  stop_timout = \"1s\"\n");
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code, Errc::Config);
    EXPECT_NE(c.error().message.find(path_ + ":2:3: stop_timout: unknown key"), std::string::npos)
        << c.error().message;
}

TEST_F(ConfigFile, WrongTypeSaysWhatWasExpectedAndFound) {
    auto c = load("command = [\"/bin/true\"]\nnotify = \"sometimes\"\n");
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.error().message.find(path_ +
                                     ":2:10: notify: expected one of standby, running, relay, "
                                     "found 'sometimes'"),
              std::string::npos)
        << c.error().message;
}

TEST_F(ConfigFile, BudgetBreakingTheDeadlineRuleIsRefused) {
    // renew 5s + stop_timeout 10s + margin 652ms ≥ ttl 15s
    auto c = load("command = [\"/bin/true\"]\nstop_timeout = \"10s\"\n");
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code, Errc::Config);
    EXPECT_NE(c.error().message.find(path_ + ":2:16: ttl 15s is too short"), std::string::npos)
        << c.error().message;
}

TEST_F(ConfigFile, BudgetJustInsideTheRuleIsAccepted) {
    // renew 1s + stop 1s + 500ms + 3s/100 + 2ms = 2.532s < 3s
    auto c =
        load("command = [\"/bin/true\"]\nttl = \"3s\"\nrenew = \"1s\"\nstop_timeout = \"1s\"\n");
    EXPECT_TRUE(c.ok()) << c.error().message;
}

TEST_F(ConfigFile, BackendTablesAreCheckedAgainstTheBackendsKeys) {
    auto c = load("command = [\"/bin/true\"]\n[file]\npath = \"/x\"\n");
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.error().message.find(path_ + ":3:1: file.path: unknown key"), std::string::npos)
        << c.error().message;
}

TEST_F(ConfigFile, BackendTimeoutsCannotBeInfinite) {
    NEEDS_BACKEND("postgres");
    auto c = load("command = [\"/bin/true\"]\n[postgres]\nconnect_timeout = \"infinity\"\n");
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.error().message.find(path_ + ":3:19: postgres.connect_timeout: expected a "
                                             "duration such as \"500ms\", \"15s\" or \"1m 30s\", "
                                             "found 'infinity' (it may not be infinite)"),
              std::string::npos)
        << c.error().message;
}

TEST_F(ConfigFile, MissingCommandIsAConfigError) {
    auto c = load("ttl = \"20s\"\n");
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code, Errc::Config);
    EXPECT_NE(c.error().message.find("no command to run"), std::string::npos);
    EXPECT_TRUE(load("ttl = \"20s\"\n", {}, false).ok()); // check/status need none
}

TEST_F(ConfigFile, ScopeLimitsAreValidated) {
    EXPECT_TRUE(load("command = [\"x\"]\nmemory_max = \"512M\"\ncpu_quota = \"150%\"\n"
                     "tasks_max = 64\nslice = \"batch.slice\"\n",
                     {}, true)
                    .ok());
    auto c = load("command = [\"x\"]\nmemory_max = \"lots\"\ncpu_quota = \"1.5\"\n");
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.error().message.find("memory_max: expected a size"), std::string::npos);
    EXPECT_NE(c.error().message.find("cpu_quota: expected a percentage"), std::string::npos);
}

TEST_F(ConfigFile, LockNamesAreSafeForEveryBackend) {
    auto c = load("command = [\"x\"]\nname = \"../etc/passwd\"\n");
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.error().message.find("name: expected letters"), std::string::npos);
}

TEST(CommandLine, StopsAtTheFirstNonOptionSoTheCommandKeepsItsFlags) {
    auto cli = parse({"--ttl=20s", "mycmd", "--ttl=1s", "-v"});
    ASSERT_TRUE(cli.ok());
    EXPECT_EQ(cli->command, (std::vector<std::string>{"mycmd", "--ttl=1s", "-v"}));
    ASSERT_EQ(cli->options.size(), 1u);
    EXPECT_EQ(cli->options[0].key, "ttl");
}

TEST(CommandLine, DoubleDashEndsTheOptions) {
    auto cli = parse({"--", "-weird-name"});
    ASSERT_TRUE(cli.ok());
    EXPECT_EQ(cli->command.front(), "-weird-name");
}

TEST(CommandLine, UnknownOptionIsAUsageError) {
    auto cli = parse({"--tll=5s", "--", "x"});
    ASSERT_FALSE(cli.ok());
    EXPECT_EQ(cli.error().code, Errc::Usage);
    EXPECT_NE(cli.error().message.find("'--tll'"), std::string::npos);
}

TEST(CommandLine, BadValueOnTheCommandLineIsAUsageError) {
    auto cli = parse({"--holders=0", "--", "x"});
    ASSERT_TRUE(cli.ok());
    auto c = loadConfig(*cli, true);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code, Errc::Usage);
    EXPECT_NE(c.error().message.find("--holders: expected a number from 1 to 1000, found 0"),
              std::string::npos)
        << c.error().message;
}

TEST(CommandLine, SubcommandsAreRecognisedOnlyFirst) {
    EXPECT_EQ(parse({"check", "--conf=x"})->action, CommandLine::Action::Check);
    EXPECT_EQ(parse({"status", "--json"})->action, CommandLine::Action::Status);
    auto run = parse({"--", "check"});
    EXPECT_EQ(run->action, CommandLine::Action::Run);
    EXPECT_EQ(run->command.front(), "check");
}

TEST(CommandLine, EveryOptionIsAConfigKeyToo) {
    auto keys = configKeys();
    for (auto name : optionNames()) {
        if (name == "conf" || name == "format" || name == "json" || name == "all" ||
            name == "help" || name == "version")
            continue;
        auto opt = findOption(name); // an alias (--timeout) stands for a key (wait)
        ASSERT_TRUE(opt) << name;
        EXPECT_NE(std::find(keys.begin(), keys.end(), opt->key), keys.end()) << name;
    }
}

TEST(CommandLine, ReadsShortOptionsAsFlockDoes) {
    auto keysAndValues = [](const CommandLine& cli) {
        std::vector<std::string> out;
        for (const auto& o : cli.options)
            out.push_back(o.flag + ":" + o.key + "=" + o.value);
        return out;
    };
    auto a = parse({"-n", "-w", "5", "-w5", "-E", "3", "-E3", "-p", "MemoryHigh=1G", "cmd", "-n"});
    ASSERT_TRUE(a.ok()) << a.error().message;
    EXPECT_EQ(
        keysAndValues(*a),
        (std::vector<std::string>{"-n:wait=0", "-w:wait=5", "-w:wait=5", "-E:conflict_exit_code=3",
                                  "-E:conflict_exit_code=3", "-p:property=MemoryHigh=1G"}));
    EXPECT_EQ(a->command, (std::vector<std::string>{"cmd", "-n"}));
    // Clustered as getopt does: a value-taking option ends the cluster.
    auto b = parse({"-nvw", "2.5", "-vE0", "--nonblock", "--timeout=1m 30s", "--", "x"});
    ASSERT_TRUE(b.ok()) << b.error().message;
    EXPECT_EQ(keysAndValues(*b),
              (std::vector<std::string>{"-n:wait=0", "-v:verbose=", "-w:wait=2.5",
                                        "-v:verbose=", "-E:conflict_exit_code=0",
                                        "--nonblock:wait=0", "--timeout:wait=1m 30s"}));
    EXPECT_EQ(parse({"-nh"})->action, CommandLine::Action::Help);
    auto missing = parse({"-w"});
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().message.find("-w needs a value"), std::string::npos);
    auto unknown = parse({"-nq", "x"});
    ASSERT_FALSE(unknown.ok());
    EXPECT_NE(unknown.error().message.find("unknown option '-q'"), std::string::npos);
    EXPECT_FALSE(parse({"--nonblock=1", "x"}).ok());
}

TEST(CommandLine, ShortOptionsMeanWhatTheirLongOnesDo) {
    auto cli = parse({"-w", "1.5", "-E", "3", "--", "x"});
    auto c = loadConfig(*cli, true);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->wait.value, 1500ms); // a bare number is seconds, as in flock and systemd
    EXPECT_EQ(c->conflictExitCode.value, 3);
    EXPECT_EQ(c->conflictExitCode.origin.describe(), "-E");
    auto n = loadConfig(*parse({"-n", "--", "x"}), true);
    EXPECT_EQ(n->wait.value, Duration::zero());
    auto bad = loadConfig(*parse({"-w", "soon", "--", "x"}), true);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code, Errc::Usage);
    EXPECT_NE(bad.error().message.find("-w: expected a duration"), std::string::npos)
        << bad.error().message;
}

TEST_F(ConfigFile, SpansAreReadAsSystemdReadsThem) {
    auto c = load("command = [\"x\"]\nttl = \"1min 30s\"\nrenew = 20\nstop_timeout = \"2.5s\"\n"
                  "wait = \"1d\"\n");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->ttl.value, 90s);
    EXPECT_EQ(c->renew.value, 20s); // a TOML integer is seconds, as a bare number is
    EXPECT_EQ(c->stopTimeout.value, 2500ms);
    EXPECT_EQ(c->wait.value, 24h);
    auto bad = load("command = [\"x\"]\n\nttl = \"3.s\"\n");
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find(path_ + ":3:7: ttl: expected a duration such as \"500ms\", "
                                               "\"15s\" or \"1m 30s\", found '3.s' (a '.' must "
                                               "be followed by digits)"),
              std::string::npos)
        << bad.error().message;
}

TEST_F(ConfigFile, ConflictExitCodeAvoidsLockunitsOwnCodes) {
    EXPECT_EQ(load("command = [\"x\"]\nconflict_exit_code = 0\n")->conflictExitCode.value, 0);
    EXPECT_EQ(load("command = [\"x\"]\n")->conflictExitCode.value, 75);
    for (const char* code : {"78", "64", "256", "-1", "\"x\""}) {
        auto c = load(std::string("command = [\"x\"]\nconflict_exit_code = ") + code + "\n");
        ASSERT_FALSE(c.ok()) << code;
        EXPECT_NE(c.error().message.find(path_ + ":2:22: conflict_exit_code: "), std::string::npos)
            << c.error().message;
    }
    EXPECT_NE(load("command = [\"x\"]\nconflict_exit_code = 79\n")
                  .error()
                  .message.find("79 is one of lockunit's own exit codes"),
              std::string::npos);
}

TEST_F(ConfigFile, ScopePropertiesAreCheckedBeforeAnyLock) {
    auto c = load("command = [\"x\"]\ndescription = \"nightly reports\"\n"
                  "property = [\"MemoryHigh=1G\", \"CPUQuota=20%\"]\n",
                  {"-p", "RuntimeMaxSec=1h", "--property=TasksAccounting=yes"});
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->description.value, "nightly reports");
    EXPECT_EQ(c->properties.value,
              (std::vector<std::string>{"MemoryHigh=1G", "CPUQuota=20%", "RuntimeMaxSec=1h",
                                        "TasksAccounting=yes"}));
    auto bad = load("command = [\"x\"]\nproperty = [\"MemoryHihg=1G\"]\n");
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code, Errc::Config);
    EXPECT_NE(bad.error().message.find(path_ + ":2:12: property: 'MemoryHihg' is not a scope "
                                               "property lockunit can set"),
              std::string::npos)
        << bad.error().message;
    auto cli = loadConfig(*parse({"-p", "KillMode=process", "--", "x"}), true);
    ASSERT_FALSE(cli.ok());
    EXPECT_EQ(cli.error().code, Errc::Usage);
    EXPECT_NE(cli.error().message.find("-p: 'KillMode' is set by lockunit"), std::string::npos)
        << cli.error().message;
}

TEST(SecretFiles, AreJudgedAsSshAndLibpqJudgeThem) {
    const unsigned me = 1000, root = 0;
    auto secret = [&](unsigned mode, unsigned owner) {
        return judgeFileMode(KeyType::SecretFile, mode, owner, me);
    };
    EXPECT_EQ(secret(0600, me).refusal, "");
    EXPECT_EQ(secret(0400, me).refusal, "");
    EXPECT_EQ(secret(0640, root).refusal, ""); // root's file, shared with our group: a warning
    EXPECT_NE(secret(0640, root).warning.find("can be read by its group (mode 0640)"),
              std::string::npos);
    EXPECT_NE(secret(0640, me).refusal.find("can be read by its group"), std::string::npos);
    EXPECT_NE(secret(0644, root).refusal.find("can be read by every user (mode 0644)"),
              std::string::npos);
    EXPECT_NE(secret(0620, me).refusal.find("can be changed by users other than its owner"),
              std::string::npos);
    EXPECT_NE(secret(0602, root).refusal.find("can be changed"), std::string::npos);
    auto trust = [&](unsigned mode) { return judgeFileMode(KeyType::TrustFile, mode, root, me); };
    EXPECT_EQ(trust(0644).refusal, ""); // a CA may be public, but not changed by others
    EXPECT_EQ(trust(0644).warning, "");
    EXPECT_NE(trust(0664).refusal.find("can be changed"), std::string::npos);
}

TEST_F(ConfigFile, SecretFilesOthersCanReadAreRefusedBeforeAnyLock) {
    NEEDS_BACKEND("redis");
    std::string pw = dir_ + "/pw";
    std::ofstream(pw) << "secret\n";
    ::chmod(pw.c_str(), 0644);
    auto c = load("command = [\"x\"]\n[redis]\npassword_file = \"" + pw + "\"\n");
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code, Errc::Config);
    EXPECT_NE(c.error().message.find(path_ + ":3:17: redis.password_file: '" + pw +
                                     "' can be read by every user (mode 0644)"),
              std::string::npos)
        << c.error().message;
    ::chmod(pw.c_str(), 0600);
    auto ok = load("command = [\"x\"]\n[redis]\npassword_file = \"" + pw + "\"\n");
    EXPECT_TRUE(ok.ok()) << ok.error().message;
    EXPECT_TRUE(ok->warnings.empty());
    std::remove(pw.c_str());
}

TEST_F(ConfigFile, AGroupReadableSecretOfAnotherOwnerIsUsedWithAWarning) {
    NEEDS_BACKEND("postgres");
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the file to another user";
    std::string pw = dir_ + "/pw";
    std::ofstream(pw) << "secret\n";
    ASSERT_EQ(::chown(pw.c_str(), 65534, 65534), 0);
    ::chmod(pw.c_str(), 0640);
    auto c = load("command = [\"x\"]\n[postgres]\npassword_file = \"" + pw + "\"\n");
    ASSERT_TRUE(c.ok()) << c.error().message;
    ASSERT_EQ(c->warnings.size(), 1u);
    EXPECT_NE(c->warnings[0].find(path_ + ":3:17: postgres.password_file: '" + pw +
                                  "' can be read by its group (mode 0640); used"),
              std::string::npos)
        << c->warnings[0];
    std::remove(pw.c_str());
}

TEST_F(ConfigFile, FilesUnderTheCredentialsDirectoryAreTrustedAsSystemdMadeThem) {
    NEEDS_BACKEND("redis");
    std::string pw = dir_ + "/pw";
    std::ofstream(pw) << "secret\n";
    ::chmod(pw.c_str(), 0644); // a credential's mode is systemd's business (it may add ACLs)
    ::setenv("CREDENTIALS_DIRECTORY", dir_.c_str(), 1);
    auto c = load("command = [\"x\"]\n[redis]\npassword_file = \"" + pw + "\"\n");
    ::unsetenv("CREDENTIALS_DIRECTORY");
    EXPECT_TRUE(c.ok()) << c.error().message;
    std::remove(pw.c_str());
}
