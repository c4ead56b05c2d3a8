// The readiness prober of haco-fleet: observe::ReadinessProber, in the
// instance's network namespace when it has its own.
#include "haco/ops.hpp"

namespace haco::ops {
namespace {

class ObservedReadiness : public ReadinessProber {
 public:
  ObservedReadiness(boost::asio::io_context& io, observe::ReadySpec ready) : prober_(io), ready_(std::move(ready)) {}

  void watch(observe::InstanceId id, const InstanceSpec& instance, pid_t pid, Clock::time_point deadline,
             observe::ProbeCallback callback) override {
    UniqueFd netns;
    if (instance.container.has_namespace(Namespace::net)) netns = observe::open_netns(pid);
    prober_.watch(id, observe::probe_spec(ready_, instance.port, netns.get()), deadline, std::move(callback));
  }

  void cancel(observe::InstanceId id) override { prober_.cancel(id); }
  void cancel_all() override { prober_.cancel_all(); }

 private:
  observe::ReadinessProber prober_;
  observe::ReadySpec ready_;
};

}  // namespace

ProberFactory observed_readiness(observe::ReadySpec ready) {
  return [ready](boost::asio::io_context& io) -> std::unique_ptr<ReadinessProber> {
    return std::make_unique<ObservedReadiness>(io, ready);
  };
}

}  // namespace haco::ops
