#include "net/access_rules.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace canserver {
namespace {

bool ParseRole(absl::string_view word, Role* role) {
  if (word == "monitor") {
    *role = Role::kMonitor;
  } else if (word == "transmit") {
    *role = Role::kTransmit;
  } else if (word == "configure") {
    *role = Role::kConfigure;
  } else {
    return false;
  }
  return true;
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kMonitor:
      return "monitor";
    case Role::kTransmit:
      return "transmit";
    case Role::kConfigure:
      return "configure";
  }
  return "?";
}

std::string Access::Describe() const {
  if (rule.empty()) return absl::StrFormat("role %s, no --access rules", RoleName(role));
  return absl::StrFormat("role %s, matched rule '%s'", RoleName(role), rule);
}

absl::StatusOr<AccessRules> AccessRules::Parse(const std::vector<std::string>& entries) {
  AccessRules rules;
  for (const std::string& entry : entries) {
    const std::string where = absl::StrFormat("--access rule '%s'", entry);
    const std::string usage =
        "a rule is '[NAME=]WHO ROLE [on CHANNEL...]', WHO '*' or addresses, CIDR blocks and "
        "cert:NAME (a TLS client certificate's CN or subjectAltName), ROLE monitor, transmit or "
        "configure";
    Rule rule;
    rule.text = std::string(absl::StripAsciiWhitespace(entry));
    std::vector<std::string> words = absl::StrSplit(rule.text, ' ', absl::SkipWhitespace());
    if (words.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": empty; ", usage));
    if (const size_t eq = words[0].find('='); eq != std::string::npos) {
      rule.name = words[0].substr(0, eq);
      words[0] = words[0].substr(eq + 1);
      if (words[0].empty()) words.erase(words.begin());
      rule.text = absl::StrJoin(words, " ");  // without its name
    }
    if (rule.name.empty()) rule.name = absl::StrFormat("rule %d", rules.rules_.size() + 1);
    auto role_at = std::find_if(words.begin(), words.end(), [&](const std::string& w) {
      Role r;
      return ParseRole(w, &r);
    });
    if (role_at == words.end()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": no role; ", usage));
    }
    (void)ParseRole(*role_at, &rule.role);
    std::vector<std::string> addresses;
    for (auto w = words.begin(); w != role_at; ++w) {
      if (absl::StartsWith(*w, "cert:")) {
        if (w->size() == 5) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": 'cert:' needs a name; ", usage));
        }
        rule.certs.push_back(w->substr(5));
      } else if (*w == "*") {
        rule.anyone = true;
      } else {
        addresses.push_back(*w);
      }
    }
    if (addresses.empty() && rule.certs.empty() && !rule.anyone) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": no addresses; ", usage));
    }
    if (!addresses.empty()) {
      absl::StatusOr<AccessList> list = AccessList::Parse(addresses);
      if (!list.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": ", list.status().message()));
      }
      rule.addresses = *std::move(list);
    }
    auto rest = role_at + 1;
    if (rest != words.end()) {
      if (*rest != "on" || rest + 1 == words.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": after the role only 'on CHANNEL...' may follow; ", usage));
      }
      rule.channels.assign(rest + 1, words.end());
    }
    rules.rules_.push_back(std::move(rule));
  }
  return rules;
}

Access AccessRules::For(int connected_fd, absl::string_view channel,
                        const std::vector<std::string>& cert_names) const {
  if (rules_.empty()) return {Role::kConfigure, ""};
  for (const Rule& r : rules_) {
    if (!r.channels.empty() &&
        std::find(r.channels.begin(), r.channels.end(), channel) == r.channels.end()) {
      continue;
    }
    const bool by_cert = std::any_of(r.certs.begin(), r.certs.end(), [&](const std::string& c) {
      return (c == "*" && !cert_names.empty()) ||
             std::find(cert_names.begin(), cert_names.end(), c) != cert_names.end();
    });
    if (r.anyone || by_cert || (!r.addresses.empty() && r.addresses.Allows(connected_fd))) {
      return {r.role, r.name};
    }
  }
  return {Role::kMonitor, "(none matched: monitor)"};
}

std::string AccessRules::ToString() const {
  if (rules_.empty()) return "every client may configure (no --access rules)";
  std::vector<std::string> parts;
  for (const Rule& r : rules_) {
    parts.push_back(absl::StrFormat("%s: %s", r.name, r.text));
  }
  return absl::StrCat(absl::StrJoin(parts, "; "), "; anyone else: monitor");
}

}  // namespace canserver
