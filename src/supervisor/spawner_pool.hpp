// The supervisor's spawners (spawner.hpp) as a pool on its io_context: each
// one's process, socket and pidfd. A request sent to a spawner is answered on
// its socket; a spawner that ends is reported, and replaced on demand by a
// new one with the same index. Which spawner is busy with which instance is
// the fleet machine's to decide (fleet_machine.hpp).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <utility>  // boost 1.74 asio/awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>

#include "haco/cgroup.hpp"
#include "haco/control_protocol.hpp"
#include "haco/state.hpp"
#include "supervisor/spawner.hpp"

namespace haco::supervisor {

class SpawnerPool {
 public:
  struct Handlers {
    // The spawner answered its request.
    std::function<void(unsigned spawner, ReceivedSpawnReply reply)> reply;
    // Its answer could not be read (the spawner ended, or sent what it
    // should not: then it is killed, to be replaced).
    std::function<void(unsigned spawner, const std::string& error)> reply_lost;
    // The spawner process ended (it has been reaped).
    std::function<void(unsigned spawner)> exited;
  };

  // `processes`: spawners 0..K-1 as forked (fork_spawner); `fleet` and
  // `container_open_files` are what replacements are forked with.
  SpawnerPool(boost::asio::io_context& io, std::vector<SpawnerProcess> processes, cgroups::FleetCgroup fleet,
              std::uint64_t container_open_files, Handlers handlers);

  std::size_t size() const { return spawners_.size(); }
  // The spawners' pids and start times, for fleet.json.
  std::vector<state::ProcessIdentity> processes() const;

  // Sends `request` with `output` (the write end of the instance's output
  // pipe) to spawner `index`; the answer comes to Handlers::reply. Throws
  // haco::Error when the spawner cannot be reached.
  void send(unsigned index, const protocol::SpawnRequest& request, int output);
  // Forks a new spawner `index` in place of one that ended. Forking from the
  // supervisor is safe: it runs no other thread.
  void replace(unsigned index);
  // Closes every socket (each spawner reads end-of-file and exits) and reaps
  // them; the pool is empty afterwards.
  void close_and_reap();

 private:
  struct Spawner {
    state::ProcessIdentity process;
    std::unique_ptr<boost::asio::posix::stream_descriptor> socket;
    std::unique_ptr<boost::asio::posix::stream_descriptor> pidfd;
  };

  void install(SpawnerProcess process, unsigned index);

  boost::asio::io_context& io_;
  cgroups::FleetCgroup fleet_;
  std::uint64_t container_open_files_;
  Handlers handlers_;
  std::vector<std::unique_ptr<Spawner>> spawners_;
};

}  // namespace haco::supervisor
