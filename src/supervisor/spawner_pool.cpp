// The supervisor's spawners as a pool (spawner_pool.hpp).
#include "supervisor/spawner_pool.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "haco/pidfd.hpp"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace haco::supervisor {

namespace asio = boost::asio;

SpawnerPool::SpawnerPool(asio::io_context& io, std::vector<SpawnerProcess> processes, cgroups::FleetCgroup fleet,
                         std::uint64_t container_open_files, Handlers handlers)
    : io_(io), fleet_(std::move(fleet)), container_open_files_(container_open_files), handlers_(std::move(handlers)) {
  for (auto& process : processes) install(std::move(process), static_cast<unsigned>(spawners_.size()));
}

void SpawnerPool::install(SpawnerProcess process, unsigned index) {
  auto spawner = std::make_unique<Spawner>();
  spawner->process = process.process;
  spawner->socket = std::make_unique<asio::posix::stream_descriptor>(io_, process.socket.release());
  spawner->pidfd = std::make_unique<asio::posix::stream_descriptor>(io_, process.pidfd.release());
  Spawner* raw = spawner.get();
  raw->pidfd->async_wait(asio::posix::stream_descriptor::wait_read, [this, raw, index](const boost::system::error_code& ec) {
    if (ec) return;
    siginfo_t info{};
    ::waitid(static_cast<idtype_t>(P_PIDFD), raw->pidfd->native_handle(), &info, WEXITED | WNOHANG);
    handlers_.exited(index);
  });
  if (index < spawners_.size()) spawners_[index] = std::move(spawner);
  else spawners_.push_back(std::move(spawner));
}

std::vector<state::ProcessIdentity> SpawnerPool::processes() const {
  std::vector<state::ProcessIdentity> processes;
  for (const auto& spawner : spawners_) processes.push_back(spawner->process);
  return processes;
}

void SpawnerPool::send(unsigned index, const protocol::SpawnRequest& request, int output) {
  Spawner& spawner = *spawners_.at(index);
  send_spawn_request(spawner.socket->native_handle(), request, output);
  Spawner* raw = &spawner;
  spawner.socket->async_wait(asio::posix::stream_descriptor::wait_read,
                             [this, raw, index](const boost::system::error_code& ec) {
                               if (ec) return;
                               ReceivedSpawnReply reply;
                               try {
                                 reply = receive_spawn_reply(raw->socket->native_handle());
                               } catch (const std::exception& e) {
                                 // Ended, or broke the protocol: either way it
                                 // is replaced once its pidfd says it ended.
                                 ::pidfd_send_signal(raw->pidfd->native_handle(), SIGKILL, nullptr, 0);
                                 handlers_.reply_lost(index, std::string("spawner: ") + e.what());
                                 return;
                               }
                               handlers_.reply(index, std::move(reply));
                             });
}

void SpawnerPool::replace(unsigned index) {
  Spawner& old = *spawners_.at(index);
  old.socket->cancel();
  old.pidfd->cancel();
  install(fork_spawner(fleet_, container_open_files_, index), index);
}

void SpawnerPool::close_and_reap() {
  for (auto& spawner : spawners_) {
    spawner->pidfd->cancel();
    spawner->socket.reset();  // the spawner reads end-of-file and exits
  }
  for (auto& spawner : spawners_) {
    siginfo_t info{};
    ::waitid(static_cast<idtype_t>(P_PIDFD), spawner->pidfd->native_handle(), &info, WEXITED);
  }
  spawners_.clear();
}

}  // namespace haco::supervisor
