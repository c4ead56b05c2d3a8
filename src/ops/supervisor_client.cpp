// The supervisor client of haco-fleet: supervisor::ControlClient and the
// supervisor module's start and teardown functions. The only file of the
// ops library that knows the control protocol's messages.
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <utility>  // boost 1.74 asio/awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <fmt/format.h>

#include "haco/control_protocol.hpp"
#include "haco/error.hpp"
#include "haco/kept_trees.hpp"
#include "haco/ops.hpp"
#include "haco/overloaded.hpp"

namespace haco::ops {
namespace {

namespace asio = boost::asio;
namespace protocol = supervisor::protocol;

// One reply of the supervisor to a StartRequest, as `up` sees it.
StartEvent start_event_from(const protocol::Reply& reply) {
  StartEvent event;
  std::visit(Overloaded{[&](const protocol::StartedEvent& e) {
                          event.kind = StartEvent::Kind::started;
                          event.instance = e.instance;
                          event.process = {e.pid, e.start_time};
                          event.clone_started = Clock::time_point{std::chrono::nanoseconds(e.clone_started_ns)};
                          event.exec_done = Clock::time_point{std::chrono::nanoseconds(e.exec_done_ns)};
                        },
                        [&](const protocol::FailedEvent& e) {
                          event.kind = StartEvent::Kind::failed;
                          event.instance = e.instance;
                          event.error = e.error;
                        },
                        [&](const protocol::ExitedEvent& e) {
                          event.kind = StartEvent::Kind::exited;
                          event.instance = e.instance;
                          event.exit = e.exit;
                          event.restarting = e.restarting;
                        },
                        [&](const protocol::Done& d) {
                          event.kind = StartEvent::Kind::done;
                          event.error = d.error.value_or(std::string());
                        }},
             reply);
  return event;
}

// Reads the answers, one line each, until the connection ends or the
// io_context stops.
// The answer to a request about named instances: a FailedEvent for each
// instance it could not be done for, then Done, whose error (the request
// refused as a whole) lands in `refused`.
struct PerInstanceAnswer {
  std::map<std::string, std::string> failures;
  std::optional<std::string> refused;
};

PerInstanceAnswer read_per_instance_answer(supervisor::ControlClient& client) {
  PerInstanceAnswer answer;
  for (;;) {
    auto reply = client.receive();
    if (auto* failed = std::get_if<protocol::FailedEvent>(&reply)) {
      answer.failures[failed->instance] = failed->error;
      continue;
    }
    if (auto* done = std::get_if<protocol::Done>(&reply)) {
      answer.refused = done->error;
      return answer;
    }
  }
}

// A supervisor started by an older haco-fleet answers a request it does
// not know this way.
bool is_unknown_request(const std::string& error) {
  return error.find("unknown control request") != std::string::npos;
}

class ControlStartCall : public StartCall {
 public:
  ControlStartCall(asio::io_context& io, UniqueFd fd, std::function<void(const StartEvent&)> on_event)
      : socket_(io, asio::local::stream_protocol(), fd.release()), on_event_(std::move(on_event)) {
    read_next();
  }

 private:
  void read_next() {
    asio::async_read_until(socket_, input_, '\n', [this](const boost::system::error_code& ec, std::size_t size) {
      if (ec) {
        if (ec == asio::error::operation_aborted) return;
        StartEvent gone;
        gone.kind = StartEvent::Kind::gone;
        on_event_(gone);
        return;
      }
      std::string line(asio::buffers_begin(input_.data()), asio::buffers_begin(input_.data()) + size - 1);
      input_.consume(size);
      on_event_(start_event_from(protocol::decode_reply(line)));
      read_next();
    });
  }

  asio::local::stream_protocol::socket socket_;
  asio::streambuf input_;
  std::function<void(const StartEvent&)> on_event_;
};

class ControlSupervisor : public SupervisorClient {
 public:
  bool answers(const state::FleetPaths& paths) override {
    return supervisor::ControlClient::connect(paths).has_value();
  }

  state::ProcessIdentity launch(const supervisor::SupervisorConfig& config) override {
    return supervisor::start_supervisor(config);
  }

  std::unique_ptr<StartCall> start(asio::io_context& io, const state::FleetPaths& paths,
                                   const std::vector<state::InstanceRecord>& records,
                                   std::function<void(const StartEvent&)> on_event) override {
    auto client = supervisor::ControlClient::connect(paths);
    if (!client) throw Error("the supervisor of fleet '" + paths.fleet + "' is not listening");
    client->send(supervisor::protocol::StartRequest{records});
    return std::make_unique<ControlStartCall>(io, client->release_fd(), std::move(on_event));
  }

  void remove(const state::FleetPaths& paths, const std::vector<state::InstanceRecord>& records,
              const supervisor::TeardownOptions& options, supervisor::TreePurge trees) override {
    supervisor::teardown_instances(paths, records, options, trees);
  }

  void stop(const state::FleetPaths& paths, const std::vector<std::string>& instances,
            std::chrono::milliseconds timeout) override {
    auto client = supervisor::connect_with_deadline(paths, timeout);
    if (!client) throw Error("the supervisor of fleet '" + paths.fleet + "' is not listening");
    client->call(supervisor::protocol::StopRequest{instances, timeout, false});
  }

  void shutdown(const state::FleetPaths& paths, const supervisor::TeardownOptions& options) override {
    supervisor::teardown_fleet(paths, options);
  }

  void clear_for_takeover(const state::FleetPaths& paths, const state::FleetState& fleet) override {
    supervisor::clear_for_takeover(paths, fleet);
  }

  void clear_leftovers(const state::FleetPaths& paths, const state::FleetState& fleet,
                       const std::function<bool(const std::string&)>& wanted) override {
    supervisor::clear_leftovers(paths, fleet, wanted);
  }

  bool left_traces(const state::FleetPaths& paths) override { return supervisor::fleet_left_traces(paths); }

  std::vector<std::string> fleets_without_state(const std::string& state_root) override {
    return supervisor::fleets_without_state(state_root);
  }

  std::optional<std::string> other_state_root(const state::FleetPaths& paths) override {
    return supervisor::other_state_root(paths);
  }

  std::vector<std::string> fleets_with_kept_trees(const std::string& data_root) override {
    return supervisor::fleets_with_kept_trees(data_root);
  }

  std::map<std::string, std::string> update_limits(
      const state::FleetPaths& paths, const std::map<std::string, std::vector<CgroupSetting>>& limits) override {
    auto client = supervisor::ControlClient::connect(paths);
    if (!client) throw Error("the supervisor of fleet '" + paths.fleet + "' is not listening");
    protocol::UpdateLimitsRequest request;
    for (const auto& [instance, settings] : limits) request.instances.push_back({instance, settings});
    client->send(request);
    PerInstanceAnswer answer = read_per_instance_answer(*client);
    if (!answer.refused) return answer.failures;
    // A supervisor started by a haco-fleet from before `reload`.
    if (is_unknown_request(*answer.refused))
      throw Error(fmt::format("the supervisor of fleet '{}' was started by a haco-fleet without `reload` ({}): "
                              "`down` the fleet and `up` it again with this one to reload it",
                              paths.fleet, *answer.refused));
    throw Error("the supervisor refused 'update-limits': " + *answer.refused);
  }

  std::map<std::string, std::string> record_latencies(const state::FleetPaths& paths,
                                                      const std::vector<protocol::MeasuredStart>& starts) override {
    auto client = supervisor::ControlClient::connect(paths);
    if (!client) throw Error("the supervisor of fleet '" + paths.fleet + "' is not listening");
    client->send(protocol::RecordLatenciesRequest{starts});
    PerInstanceAnswer answer = read_per_instance_answer(*client);
    if (!answer.refused) return answer.failures;
    // A supervisor started by a haco-fleet that did not keep latencies.
    if (is_unknown_request(*answer.refused)) return {};
    throw Error("the supervisor refused 'record-latencies': " + *answer.refused);
  }
};

}  // namespace

std::unique_ptr<SupervisorClient> control_supervisor() { return std::make_unique<ControlSupervisor>(); }

}  // namespace haco::ops
