// Hands every batch read from the archive to every writer, in order, holding
// at most `capacity` batches at a time: the reader (decompression) runs ahead
// of the slowest writer by that much and no more, which bounds memory
// whatever the number of trees.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <vector>

#include "rootfs/entry.hpp"

namespace haco::rootfs {

class BatchQueue {
 public:
  BatchQueue(std::size_t consumers, std::size_t capacity);

  // Blocks while the queue is full. Returns false when the queue was aborted.
  bool push(std::shared_ptr<const Batch> batch);
  // No more batches will come.
  void close();
  // Stops everyone: pushes fail, pops return null.
  void abort();
  bool aborted() const;

  // The next batch for `consumer`, or null at the end (or after abort).
  // The batch stays valid while the returned pointer lives.
  std::shared_ptr<const Batch> pop(std::size_t consumer);

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::shared_ptr<const Batch>> batches_;
  std::uint64_t front_seq_ = 0;           // sequence number of batches_.front()
  std::vector<std::uint64_t> next_seq_;   // per consumer
  std::size_t capacity_;
  bool closed_ = false;
  bool aborted_ = false;
};

}  // namespace haco::rootfs
