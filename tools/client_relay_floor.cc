#include "tools/client_relay_floor.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <utility>

#include "core/status_macros.h"
#include "core/v5_codec.h"
#include "net/socket_util.h"
#include "tools/relay_floor.h"

namespace canserver {

// Every client's output: what its socket did not take yet, and the epoll set that waits for room.
// One thread only (B, or the only one).
class ClientRelayFloor::Writer {
 public:
  Writer() : epfd_(::epoll_create1(EPOLL_CLOEXEC)) {}
  int epoll_fd() const { return epfd_.get(); }

  // `m` to its client, or to every client but its sender.
  void Take(const Message& m) {
    if (m.to >= 0) {
      out_[m.to] += m.bytes;
      Flush(m.to);
      return;
    }
    for (auto& [fd, pending] : out_) {
      if (fd == m.from) continue;
      pending += m.bytes;
      Flush(fd);
    }
  }
  void Flush(int fd) {
    std::string& pending = out_[fd];
    while (!pending.empty()) {
      const ssize_t n = ::send(fd, pending.data(), pending.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n <= 0) break;
      pending.erase(0, static_cast<size_t>(n));
    }
    const bool want = !pending.empty();
    if (want != watching_[fd]) {
      epoll_event ev{};
      ev.events = EPOLLOUT;
      ev.data.fd = fd;
      (void)::epoll_ctl(epfd_.get(), want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fd, &ev);
      watching_[fd] = want;
    }
  }
  void Forget(int fd) {
    if (watching_[fd]) (void)::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr);
    out_.erase(fd);
    watching_.erase(fd);
  }

 private:
  UniqueFd epfd_;
  std::map<int, std::string> out_;
  std::map<int, bool> watching_;
};

absl::StatusOr<std::unique_ptr<ClientRelayFloor>> ClientRelayFloor::Start(int threads) {
  if (threads != 1 && threads != 2) return absl::InvalidArgumentError("threads: 1 or 2");
  ASSIGN_OR_RETURN(UniqueFd listener, ListenTcp({"127.0.0.1", 0}));
  RETURN_IF_ERROR(SetNonBlocking(listener.get()));
  ASSIGN_OR_RETURN(Wakeup stop, Wakeup::Create());
  ASSIGN_OR_RETURN(Wakeup handoff, Wakeup::Create());
  std::unique_ptr<ClientRelayFloor> relay(
      new ClientRelayFloor(std::move(listener), std::move(stop), std::move(handoff), threads));
  relay->reader_ = std::jthread([r = relay.get()](std::stop_token s) { r->Read(s); });
  if (threads == 2) {
    relay->writer_thread_ = std::jthread([r = relay.get()](std::stop_token s) { r->Write(s); });
  }
  return relay;
}

ClientRelayFloor::ClientRelayFloor(UniqueFd listener, Wakeup stop, Wakeup handoff, int threads)
    : listener_(std::move(listener)),
      port_(LocalPort(listener_.get())),
      stop_wakeup_(std::move(stop)),
      handoff_wakeup_(std::move(handoff)),
      threads_(threads),
      writer_(std::make_unique<Writer>()) {}

ClientRelayFloor::~ClientRelayFloor() {
  reader_.request_stop();
  writer_thread_.request_stop();
  stop_wakeup_.Notify();
  if (reader_.joinable()) reader_.join();
  if (writer_thread_.joinable()) writer_thread_.join();
}

absl::Duration ClientRelayFloor::CpuTime() {
  return ThreadCpuTime(reader_) +
         (writer_thread_.joinable() ? ThreadCpuTime(writer_thread_) : absl::ZeroDuration());
}

void ClientRelayFloor::Deliver(Message m) {
  if (threads_ == 1) {
    writer_->Take(m);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    handed_.push_back(std::move(m));
  }
  handoff_wakeup_.Notify();
}

void ClientRelayFloor::Read(std::stop_token stop) {
  NameThisThread(threads_ == 1 ? "relay1" : "relay2:read");
  // One thread: the writer's waits for room are ours too.
  UniqueFd epfd = threads_ == 1
                      ? EpollWatching({listener_.get(), stop_wakeup_.fd(), writer_->epoll_fd()})
                      : EpollWatching({listener_.get(), stop_wakeup_.fd()});
  struct Conn {  // its descriptor is in fds_: the writer may use it until both threads end
    v5::StreamDecoder decoder;
    bool open = false;
  };
  std::map<int, Conn> conns;
  char buf[16 << 10];
  while (!stop.stop_requested()) {
    epoll_event events[64];
    const int ready = ::epoll_wait(epfd.get(), events, 64, -1);
    for (int i = 0; i < ready; ++i) {
      const int fd = events[i].data.fd;
      if (fd == stop_wakeup_.fd()) continue;
      if (threads_ == 1 && fd == writer_->epoll_fd()) {
        epoll_event room[64];
        const int n = ::epoll_wait(writer_->epoll_fd(), room, 64, 0);
        for (int k = 0; k < n; ++k) writer_->Flush(room[k].data.fd);
        continue;
      }
      if (fd == listener_.get()) {
        for (UniqueFd& conn : AcceptAll(listener_.get(), epfd.get())) {
          const int key = conn.get();
          conns[key];
          fds_.push_back(std::move(conn));
          Deliver({-1, key, ""});  // the writer knows it from now on
        }
        continue;
      }
      auto it = conns.find(fd);
      if (it == conns.end()) continue;
      Conn& c = it->second;
      const ssize_t got = ::recv(fd, buf, sizeof buf, 0);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
        // The client is done: it hears the end too. The descriptor stays open until the relay
        // stops, so the writer never writes to a number reused meanwhile.
        (void)::epoll_ctl(epfd.get(), EPOLL_CTL_DEL, fd, nullptr);
        ::shutdown(fd, SHUT_RDWR);
        continue;
      }
      if (got < 0) continue;
      c.decoder.Append(absl::string_view(buf, static_cast<size_t>(got)));
      // Whole messages only, in one hand-over per read: what one client sent together.
      std::string messages;
      while (true) {
        absl::StatusOr<std::optional<v5::Event>> next = c.decoder.Next();
        if (!next.ok() || !next->has_value()) break;
        const v5::Event& e = **next;
        if (!c.open) {
          if (std::holds_alternative<v5::FilterConfig>(e)) {
            std::string reply;
            (void)v5::Encode(v5::BusResponse{"client relay floor (canbench)"}, &reply);
            Deliver({-1, fd, std::move(reply)});
            c.open = true;
          }
          continue;
        }
        (void)v5::Encode(e, &messages);
      }
      if (!messages.empty()) Deliver({fd, -1, std::move(messages)});
    }
  }
}

void ClientRelayFloor::Write(std::stop_token stop) {
  NameThisThread("relay2:write");
  UniqueFd epfd = EpollWatching({stop_wakeup_.fd(), handoff_wakeup_.fd(), writer_->epoll_fd()});
  std::vector<Message> taken;
  while (!stop.stop_requested()) {
    epoll_event events[8];
    const int ready = ::epoll_wait(epfd.get(), events, 8, -1);
    for (int i = 0; i < ready; ++i) {
      if (events[i].data.fd == writer_->epoll_fd()) {
        epoll_event room[64];
        const int n = ::epoll_wait(writer_->epoll_fd(), room, 64, 0);
        for (int k = 0; k < n; ++k) writer_->Flush(room[k].data.fd);
      } else if (events[i].data.fd == handoff_wakeup_.fd()) {
        handoff_wakeup_.Drain();
        {
          std::lock_guard<std::mutex> lock(mu_);
          taken.swap(handed_);
        }
        for (const Message& m : taken) writer_->Take(m);
        taken.clear();
      }
    }
  }
}

}  // namespace canserver
