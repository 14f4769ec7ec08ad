// AccessRules: who may do what on which channel (`canserver --access`). A rig's owner decides
// which clients only listen and which may touch the bus:
//
//   monitor    receive only
//   transmit   + send frames, periodic jobs (socketcand's BCM jobs too), ISO-TP
//   configure  + change the bus's bit rate (--bitrate-policy apply)
//
// Rules, first match wins, each "[NAME=]WHO ROLE [on CHANNEL...]": WHO is a list separated by
// spaces of addresses, CIDR blocks and "cert:NAME" (a TLS client whose verified certificate has
// NAME as its subject CN or a subjectAltName; "cert:*" any verified certificate), or "*" for
// anyone; a client matches a rule when any of them matches. Without "on" a rule holds for every
// channel. Examples:
//
//   --access 'bench=127.0.0.0/8 ::1 configure,lab=10.1.0.0/16 transmit on can0,all=* monitor'
//   --access 'flashers=cert:flash-station-1 cert:flash-station-2 transmit,all=* monitor'
//
// No rules: every client configures (the behaviour before roles, so existing scripts work).
// With rules, a client no rule matches is a monitor. --allow stays the outer gate: who may
// connect at all.
//
// Immutable after Parse(); any thread may call For().
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "net/access_list.h"

namespace canserver {

enum class Role { kMonitor, kTransmit, kConfigure };
absl::string_view RoleName(Role role);

// A client's role on a channel and the rule that gave it.
struct Access {
  Role role = Role::kConfigure;
  std::string rule;  // the matching rule's name; "" when no rules are set

  // "role monitor, matched rule 'lab'" (or "no --access rules"), for refusals and logs.
  std::string Describe() const;
};

class AccessRules {
 public:
  static absl::StatusOr<AccessRules> Parse(const std::vector<std::string>& entries);

  bool empty() const { return rules_.empty(); }
  // The role of the client connected on `fd` (its peer address), with the names of its verified
  // TLS client certificate (TlsStream::peer_names(); none without one), on channel `channel`.
  Access For(int connected_fd, absl::string_view channel,
             const std::vector<std::string>& cert_names = {}) const;
  // The rules as given, for the start-up log and /api/status.
  std::string ToString() const;

 private:
  struct Rule {
    std::string name;
    bool anyone = false;
    AccessList addresses;
    std::vector<std::string> certs;  // "*": any verified certificate
    Role role = Role::kMonitor;
    std::vector<std::string> channels;  // empty: every channel
    std::string text;
  };
  std::vector<Rule> rules_;
};

}  // namespace canserver
