// SPDX-License-Identifier: LGPL-2.1-or-later
// Writes lockunit's bash or zsh completion from the option table that the command line itself
// uses (commandLineOptions()), at build time, so that the completions cannot drift from the
// options. Usage: lockunit-completions bash|zsh > FILE
#include <cstdio>
#include <string>
#include <string_view>

#include "config/options.hpp"
#include "config/scope_properties.hpp"

using namespace lockunit;

namespace {

std::string join(const std::vector<std::string>& words, const char* sep = " ") {
    std::string out;
    for (const auto& w : words)
        out += (out.empty() ? "" : sep) + w;
    return out;
}

// The words a value of this option may be, as a shell word list; empty if any text.
std::string valuesOf(const OptionInfo& o) {
    if (!o.choices.empty()) return join(o.choices);
    if (o.name == "property") {
        std::vector<std::string> names;
        for (const auto& n : scopePropertyNames())
            names.push_back(n + "=");
        return join(names);
    }
    return "";
}

std::string quoted(std::string s) {
    std::string out = "'";
    for (char c : s)
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

void bash() {
    std::vector<std::string> words, valueOpts;
    std::string clusters; // short options that take a value, which may end a cluster: -nw
    std::string cases;
    for (const auto& o : commandLineOptions()) {
        bool value = !o.metavar.empty();
        words.push_back("--" + o.name + (value ? "=" : ""));
        if (o.shortName) words.push_back(std::string("-") + o.shortName);
        if (!value) continue;
        std::string spellings = "--" + o.name;
        if (o.shortName) {
            spellings += std::string("|-") + o.shortName;
            clusters += o.shortName;
        }
        valueOpts.push_back(spellings);
        if (o.metavar == "FILE")
            cases += "        " + spellings + ") COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n";
        else if (auto v = valuesOf(o); !v.empty())
            cases += "        " + spellings + ") COMPREPLY=($(compgen -W " + quoted(v) +
                     " -- \"$cur\")) ;;\n";
        else
            cases += "        " + spellings + ") COMPREPLY=() ;;\n";
    }
    std::printf(
        R"(# bash completion for lockunit(1). Generated from lockunit's option table at build
# time by src/completions/generate.cpp: do not edit.

_lockunit() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} i word opt= dashdash=
    # Past "--" or the first word that is no option (nor an option's value): the command.
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        case $word in
        --) dashdash=1; i=$((i + 1)); break ;;
        check|status|cleanup) [ "$i" -eq 1 ] && continue; break ;;
        -*|=) ;;
        *)
            case ${COMP_WORDS[i-1]} in
            %s|=) ;;
            *) break ;;
            esac ;;
        esac
    done
    if [ "$i" -lt "$COMP_CWORD" ]; then
        COMPREPLY=($(compgen -f -- "$cur")) # the command's arguments
        return
    elif [ -n "$dashdash" ]; then
        COMPREPLY=($(compgen -c -- "$cur"))
        return
    fi
    # An option's value: "--opt VALUE", "-o VALUE", or "--opt=VALUE" (bash splits at "=").
    if [ "$cur" = "=" ]; then
        opt=$prev cur=
    elif [ "$prev" = "=" ]; then
        opt=${COMP_WORDS[COMP_CWORD-2]}
    else
        opt=$prev
    fi
    case $opt in
%s        -[!-]*[%s]) COMPREPLY=() ;;
        *) opt= ;;
    esac
    if [ -n "$opt" ]; then
        [[ ${COMPREPLY[0]} == *= ]] && compopt -o nospace 2>/dev/null
        return
    fi
    case $cur in
    -*)
        COMPREPLY=($(compgen -W %s -- "$cur"))
        [[ ${COMPREPLY[0]} == *= ]] && compopt -o nospace 2>/dev/null
        ;;
    *)
        if [ "$COMP_CWORD" -eq 1 ]; then
            COMPREPLY=($(compgen -W 'check status cleanup' -- "$cur") $(compgen -c -- "$cur"))
        else
            COMPREPLY=($(compgen -c -- "$cur"))
        fi
        ;;
    esac
}
complete -F _lockunit lockunit
)",
        (join(valueOpts, "|") + "|-[!-]*[" + clusters + "]").c_str(), cases.c_str(),
        clusters.c_str(), quoted(join(words)).c_str());
}

std::string zshEscape(std::string s) {
    std::string out;
    for (char c : s) {
        if (c == '[' || c == ']' || c == ':' || c == '\\') out += '\\';
        if (c == '\'') {
            out += "'\\''";
            continue;
        }
        out += c;
    }
    return out;
}

void zsh() {
    std::string specs;
    for (const auto& o : commandLineOptions()) {
        std::string help = "[" + zshEscape(o.help) + "]";
        std::string action;
        if (!o.metavar.empty()) {
            std::string what = zshEscape(o.metavar);
            if (o.metavar == "FILE")
                action = ":" + what + ":_files";
            else if (auto v = valuesOf(o); !v.empty())
                action = ":" + what + ":(" + v + ")";
            else
                action = ":" + what + ": ";
        }
        std::string repeat = o.name == "property" ? "*" : "";
        if (o.shortName) {
            std::string excl = "(-" + std::string(1, o.shortName) + " --" + o.name + ")";
            if (!repeat.empty()) excl.clear();
            specs += "    '" + excl + repeat + "-" + std::string(1, o.shortName) +
                     (o.metavar.empty() ? "" : "+") + help + action + "' \\\n";
        }
        std::string excl = o.shortName && repeat.empty()
                               ? "(-" + std::string(1, o.shortName) + " --" + o.name + ")"
                               : "";
        specs += "    '" + excl + repeat + "--" + o.name + (o.metavar.empty() ? "" : "=") + help +
                 action + "' \\\n";
    }
    std::printf(R"(#compdef lockunit
# zsh completion for lockunit(1). Generated from lockunit's option table at build time by
# src/completions/generate.cpp: do not edit.

_lockunit_command() {
    if (( CURRENT == 1 )); then
        _alternative 'subcommands:subcommand:(check status cleanup)' \
            'commands:command:_command_names -e'
    else
        _normal
    fi
}

_arguments -s -S \
%s    '*:: :_lockunit_command'
)",
                specs.c_str());
}

} // namespace

int main(int argc, char** argv) {
    std::string_view shell = argc == 2 ? argv[1] : "";
    if (shell == "bash")
        bash();
    else if (shell == "zsh")
        zsh();
    else {
        std::fprintf(stderr, "usage: %s bash|zsh\n", argv[0]);
        return 64;
    }
    return 0;
}
