// Starting records through the supervisor and probing them until ready
// (launch_wait.hpp).
#include "ops/launch_wait.hpp"

#include <deque>
#include <fstream>
#include <set>
#include <utility>  // boost 1.74 asio/awaitable.hpp uses std::exchange without it

#include <boost/asio/steady_timer.hpp>

#include "haco/error.hpp"
#include "haco/fault_point.hpp"
#include "haco/printable.hpp"

namespace haco::ops {

namespace asio = boost::asio;
using state::InstanceRecord;

void record_failure(std::map<std::string, std::string>& failures, Sink& sink, const std::string& name,
                    const std::string& reason) {
  if (failures.count(name)) return;
  std::string shown = printable(reason, LineBreaks::keep);
  failures[name] = shown;
  sink.failed(name, shown);
}

std::string log_tail(const std::string& path) {
  std::ifstream in(path);
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    lines.push_back(line);
    if (lines.size() > 3) lines.pop_front();
  }
  if (lines.empty()) return "";
  std::string text = "; its log (" + path + ") ends with:";
  for (const auto& l : lines) text += "\n      " + printable(l);
  return text;
}

std::vector<supervisor::protocol::MeasuredStart> measured_starts(const observe::LatencyRecorder& recorder,
                                                                 const std::vector<InstanceRecord>& records) {
  std::set<std::string> wanted;
  for (const auto& r : records) wanted.insert(r.name());
  std::map<observe::InstanceId, supervisor::protocol::MeasuredStart> by_id;
  for (const auto& track : recorder.instances())
    if (wanted.count(track.name)) by_id[track.id].instance = track.name;
  for (const auto& interval : recorder.intervals()) {
    auto it = by_id.find(interval.instance);
    if (it == by_id.end() || !interval.finished || !interval.ok || interval.end < interval.start) continue;
    it->second.phases[interval.phase] = std::chrono::duration<double>(interval.end - interval.start).count();
  }
  std::vector<supervisor::protocol::MeasuredStart> out;
  for (auto& [id, start] : by_id)
    if (!start.phases.empty()) out.push_back(std::move(start));
  return out;
}

void keep_start_latencies(SupervisorClient& supervisor, const state::FleetPaths& paths,
                          const observe::LatencyRecorder& recorder, const std::vector<InstanceRecord>& records,
                          Sink& sink) {
  auto starts = measured_starts(recorder, records);
  if (starts.empty()) return;
  try {
    for (const auto& [instance, why] : supervisor.record_latencies(paths, starts))
      sink.warning(instance + ": start latencies not kept: " + printable(why));
  } catch (const Error& e) {
    sink.warning(std::string("start latencies not kept: ") + printable(e.what()));
  }
}

namespace {

// One launch_and_wait: the records are named by their position in the
// vector (the prober's ids), the recorder's by their spec.index (or their
// position: LaunchWait::recorder_by_position).
class Launch {
 public:
  Launch(const LaunchWait& how, std::vector<InstanceRecord>& records, std::map<std::string, std::string>& failures)
      : how_(how), records_(records), failures_(failures), ticker_(io_) {}

  std::size_t run() {
    std::vector<InstanceRecord> batch;
    for (std::size_t i = 0; i < records_.size(); ++i)
      if (!failures_.count(records_[i].name())) {
        batch.push_back(records_[i]);
        expected_ += 1;
        position_[records_[i].name()] = i;
      }
    if (batch.empty()) return 0;
    prober_ = how_.probers(io_);
    deadline_ = Clock::now() + how_.timeout;
    auto call = how_.supervisor.start(io_, how_.paths, batch, [this](const StartEvent& e) { on_event(e); });
    tick();
    io_.run();
    prober_->cancel_all();
    return ready_;
  }

 private:
  observe::InstanceId recorder_id(std::size_t position) const {
    return how_.recorder_by_position ? position : records_[position].spec.index;
  }

  void fail(std::size_t position, const std::string& reason) {
    record_failure(failures_, how_.sink, records_[position].name(), reason);
  }

  bool awaiting_ready(std::size_t position) const {
    return exec_done_.count(position) && !exit_reasons_.count(position) && !how_.no_wait;
  }

  void maybe_finish() {
    if (launches_done_ && (how_.no_wait || settled_ >= expected_)) io_.stop();
  }

  void on_ready(std::size_t position, const observe::ProbeResult& result) {
    auto& record = records_[position];
    ++settled_;
    if (auto exited = exit_reasons_.find(position); !result.ready && exited != exit_reasons_.end()) {
      if (how_.recorder)
        how_.recorder->fail(recorder_id(position), observe::phase::exec_to_ready, exited->second,
                            result.finished_at);
      fail(position, exited->second);
    } else if (result.ready) {
      if (how_.recorder) how_.recorder->end(recorder_id(position), observe::phase::exec_to_ready, result.finished_at);
      how_.sink.step("ready", record.name(), result.finished_at - exec_done_[position]);
      ++ready_;
      if (how_.on_ready) how_.on_ready(ready_, expected_);
    } else {
      if (how_.recorder)
        how_.recorder->fail(recorder_id(position), observe::phase::exec_to_ready, result.error, result.finished_at);
      fail(position, result.error);
    }
    maybe_finish();
  }

  void on_event(const StartEvent& event) {
    switch (event.kind) {
      case StartEvent::Kind::done:
        // A request the supervisor refused as a whole: nothing of it starts.
        if (!event.error.empty())
          for (auto& [name, position] : position_)
            if (records_[position].process.pid <= 0 && !failures_.count(name)) {
              ++settled_;
              fail(position, "the supervisor refused to start it: " + event.error);
            }
        launches_done_ = true;
        fault_point("up-started");
        maybe_finish();
        return;
      case StartEvent::Kind::gone:
        if (launches_done_) return;
        for (auto& [name, position] : position_)
          if (records_[position].process.pid <= 0) fail(position, "the supervisor went away");
        launches_done_ = true;
        settled_ = expected_;
        io_.stop();
        return;
      default:
        break;
    }
    auto found = position_.find(event.instance);
    if (found == position_.end()) return;
    const std::size_t position = found->second;
    auto& record = records_[position];
    if (event.kind == StartEvent::Kind::exited) {
      // Ended before it was ready, and the restart policy does not bring it
      // back: fail now with what it wrote, not at the timeout.
      if (event.restarting || !awaiting_ready(position)) return;
      exit_reasons_[position] = "exited (" + event.exit + ") before it was ready" + log_tail(record.log_path);
      prober_->cancel(position);
      return;
    }
    if (event.kind == StartEvent::Kind::started) {
      record.process = event.process;
      if (how_.recorder)
        how_.recorder->record(recorder_id(position), observe::phase::clone_to_exec, event.clone_started,
                              event.exec_done);
      how_.sink.step("started", event.instance, event.exec_done - event.clone_started);
      exec_done_[position] = event.exec_done;
      if (how_.no_wait) return;
      if (how_.recorder) how_.recorder->begin(recorder_id(position), observe::phase::exec_to_ready, event.exec_done);
      try {
        prober_->watch(position, record.spec, record.process.pid, deadline_,
                       [this](observe::InstanceId id, const observe::ProbeResult& r) { on_ready(id, r); });
      } catch (const Error& e) {
        ++settled_;
        if (how_.recorder) how_.recorder->fail(recorder_id(position), observe::phase::exec_to_ready, e.what());
        fail(position, e.what());
      }
    } else {
      ++settled_;
      if (how_.recorder)
        how_.recorder->fail(recorder_id(position), observe::phase::clone_to_exec,
                            event.error.empty() ? "failed" : event.error);
      fail(position, event.error.empty() ? "failed to start" : event.error);
    }
    maybe_finish();
  }

  void tick() {
    ticker_.expires_after(std::chrono::milliseconds(50));
    ticker_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      how_.sink.tick();
      if (how_.interrupted && how_.interrupted->load()) {
        io_.stop();
        return;
      }
      // Launches that never answered count against the same deadline.
      if (Clock::now() > deadline_ + std::chrono::seconds(5) && !launches_done_) {
        for (auto& [name, position] : position_)
          if (records_[position].process.pid <= 0) fail(position, "not started before the timeout");
        io_.stop();
        return;
      }
      tick();
    });
  }

  const LaunchWait& how_;
  std::vector<InstanceRecord>& records_;
  std::map<std::string, std::string>& failures_;
  asio::io_context io_;
  asio::steady_timer ticker_;
  std::unique_ptr<ReadinessProber> prober_;
  std::map<std::string, std::size_t> position_;  // of the records sent
  std::map<std::size_t, Clock::time_point> exec_done_;
  std::map<std::size_t, std::string> exit_reasons_;
  Clock::time_point deadline_{};
  std::size_t expected_ = 0;
  std::size_t settled_ = 0;  // ready or failed
  std::size_t ready_ = 0;
  bool launches_done_ = false;
};

}  // namespace

std::size_t launch_and_wait(const LaunchWait& how, std::vector<InstanceRecord>& records,
                            std::map<std::string, std::string>& failures) {
  return Launch(how, records, failures).run();
}

}  // namespace haco::ops
