// A small thread-safe cache of the last few shared values by key, for what the policies and points of one `lina run`
// can share: lookup tables built from the same profiling batches, synthetic batches and generator states.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace lina::sim {

// A few recent shared values by key (same key: same value), for the policies of a point and for points that differ
// only elsewhere; policies may run on several threads.
template <class T>
class RecentCache {
 public:
  std::shared_ptr<T> get(const std::string& key) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [k, v] : entries_) {
      if (k == key) return v;
    }
    return nullptr;
  }
  void put(const std::string& key, std::shared_ptr<T> value) {
    std::lock_guard<std::mutex> lock(mutex_);
    put_locked(key, std::move(value));
  }
  // The value under `key`, made and put there if there is none (atomically: two threads get the same one).
  template <class Make>
  std::shared_ptr<T> get_or_put(const std::string& key, Make make) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [k, v] : entries_) {
      if (k == key) return v;
    }
    std::shared_ptr<T> v = make();
    put_locked(key, v);
    return v;
  }

 private:
  void put_locked(const std::string& key, std::shared_ptr<T> value) {
    entries_.emplace_back(key, std::move(value));
    if (entries_.size() > 4) entries_.erase(entries_.begin());
  }
  std::mutex mutex_;
  std::vector<std::pair<std::string, std::shared_ptr<T>>> entries_;
};

}  // namespace lina::sim
