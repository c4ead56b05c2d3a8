#include "rootfs/batch_queue.hpp"

#include <algorithm>

namespace haco::rootfs {

BatchQueue::BatchQueue(std::size_t consumers, std::size_t capacity)
    : next_seq_(consumers, 0), capacity_(std::max<std::size_t>(capacity, 1)) {}

bool BatchQueue::push(std::shared_ptr<const Batch> batch) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return aborted_ || batches_.size() < capacity_; });
  if (aborted_) return false;
  batches_.push_back(std::move(batch));
  changed_.notify_all();
  return true;
}

void BatchQueue::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  changed_.notify_all();
}

void BatchQueue::abort() {
  std::lock_guard lock(mutex_);
  aborted_ = true;
  batches_.clear();
  changed_.notify_all();
}

bool BatchQueue::aborted() const {
  std::lock_guard lock(mutex_);
  return aborted_;
}

std::shared_ptr<const Batch> BatchQueue::pop(std::size_t consumer) {
  std::unique_lock lock(mutex_);
  std::uint64_t want = next_seq_[consumer];
  changed_.wait(lock, [&] { return aborted_ || closed_ || want < front_seq_ + batches_.size(); });
  if (aborted_ || want >= front_seq_ + batches_.size()) return nullptr;
  std::shared_ptr<const Batch> batch = batches_[want - front_seq_];
  next_seq_[consumer] = want + 1;
  // Drop the batches every consumer has taken.
  std::uint64_t slowest = *std::min_element(next_seq_.begin(), next_seq_.end());
  bool dropped = false;
  while (front_seq_ < slowest && !batches_.empty()) {
    batches_.pop_front();
    ++front_seq_;
    dropped = true;
  }
  if (dropped) changed_.notify_all();
  return batch;
}

}  // namespace haco::rootfs
