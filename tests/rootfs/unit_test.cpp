// Pure logic of the rootfs engine: path normalization, id shifting, file
// capability rewriting, the batch queue.
#include <gtest/gtest.h>
#include <linux/capability.h>

#include <cstring>
#include <thread>

#include "haco/error.hpp"
#include "haco/rootfs.hpp"
#include "rootfs/archive_reader.hpp"
#include "rootfs/batch_queue.hpp"
#include "rootfs/file_caps.hpp"

namespace haco::rootfs {
namespace {

TEST(NormalizeEntryPath, StripsDotsAndSlashes) {
  EXPECT_EQ(normalize_entry_path("./usr//bin/"), "usr/bin");
  EXPECT_EQ(normalize_entry_path("./"), "");
  EXPECT_EQ(normalize_entry_path("a/./b"), "a/b");
}

TEST(NormalizeEntryPath, RefusesEscapes) {
  EXPECT_THROW(normalize_entry_path("/etc/passwd"), Error);
  EXPECT_THROW(normalize_entry_path("../x"), Error);
  EXPECT_THROW(normalize_entry_path("a/../../x"), Error);
  EXPECT_THROW(normalize_entry_path("a/.."), Error);
  EXPECT_NO_THROW(normalize_entry_path("a/..b"));
}

TEST(IdShift, ShiftsIntoRange) {
  IdShift s({{0, 100000, 65536}}, {{0, 200000, 65536}}, OwnershipPolicy::shift);
  EXPECT_EQ(s.map(0, 0, "x"), (Owner{100000, 200000}));
  EXPECT_EQ(s.map(33, 42, "x"), (Owner{100033, 200042}));
  EXPECT_EQ(s.root_uid(), 100000u);
}

TEST(IdShift, OutOfRangeNamesTheEntry) {
  IdShift s({{0, 100000, 1000}}, {{0, 100000, 1000}}, OwnershipPolicy::shift);
  try {
    s.map(65534, 0, "usr/bin/thing");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("usr/bin/thing"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("65534"), std::string::npos);
  }
}

TEST(IdShift, SquashAndFlat) {
  IdShift squash({{0, 100000, 1000}}, {{0, 100000, 1000}}, OwnershipPolicy::squash);
  EXPECT_EQ(squash.map(65534, 5, "x"), (Owner{100000, 100005}));
  IdShift flat({{0, 100000, 1000}}, {{0, 100000, 1000}}, OwnershipPolicy::flat);
  EXPECT_EQ(flat.map(33, 33, "x"), (Owner{100000, 100000}));
  EXPECT_EQ(flat.map(65534, 65534, "x"), (Owner{100000, 100000}));
}

TEST(IdShift, IdentityKeepsIds) {
  IdShift none;
  EXPECT_TRUE(none.identity());
  EXPECT_EQ(none.map(33, 44, "x"), (Owner{33, 44}));
}

TEST(IdShift, RefusesMappingWithoutRoot) {
  EXPECT_THROW(IdShift({{1, 100000, 10}}, {{1, 100000, 10}}, OwnershipPolicy::shift), Error);
}

std::string v2_caps(std::uint32_t permitted) {
  std::string v(XATTR_CAPS_SZ_2, '\0');
  std::uint32_t magic = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
  std::memcpy(v.data(), &magic, 4);
  std::memcpy(v.data() + 4, &permitted, 4);
  return v;
}

TEST(FileCaps, RewritesV2AsV3WithRootId) {
  std::string v2 = v2_caps(1u << 13);  // cap_net_raw
  auto v3 = rewrite_file_caps(v2, 100000);
  ASSERT_TRUE(v3);
  ASSERT_EQ(v3->size(), XATTR_CAPS_SZ_3);
  EXPECT_EQ(file_caps_rootid(*v3), 100000u);
  std::uint32_t magic, permitted;
  std::memcpy(&magic, v3->data(), 4);
  std::memcpy(&permitted, v3->data() + 4, 4);
  EXPECT_EQ(magic, VFS_CAP_REVISION_3 | VFS_CAP_FLAGS_EFFECTIVE);
  EXPECT_EQ(permitted, 1u << 13);
  // A v3 value is re-targeted, not stacked.
  EXPECT_EQ(file_caps_rootid(*rewrite_file_caps(*v3, 300000)), 300000u);
}

TEST(FileCaps, RefusesGarbage) {
  EXPECT_FALSE(rewrite_file_caps("junk", 100000));
  EXPECT_FALSE(rewrite_file_caps(std::string(XATTR_CAPS_SZ_2 + 1, '\0'), 100000));
}

TEST(BatchQueue, EveryConsumerSeesEveryBatchInOrder) {
  BatchQueue q(3, 2);
  std::vector<std::vector<std::size_t>> seen(3);
  std::vector<std::thread> consumers;
  for (std::size_t c = 0; c < 3; ++c)
    consumers.emplace_back([&, c] {
      while (auto b = q.pop(c)) seen[c].push_back(b->ops.size());
    });
  for (std::size_t i = 1; i <= 20; ++i) {
    auto b = std::make_shared<Batch>();
    b->ops.resize(i);
    ASSERT_TRUE(q.push(b));
  }
  q.close();
  for (auto& t : consumers) t.join();
  std::vector<std::size_t> expected;
  for (std::size_t i = 1; i <= 20; ++i) expected.push_back(i);
  for (const auto& s : seen) EXPECT_EQ(s, expected);
}

TEST(BatchQueue, AbortReleasesAProducerWaitingOnAFullQueue) {
  BatchQueue q(1, 1);
  ASSERT_TRUE(q.push(std::make_shared<Batch>()));
  std::thread aborter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    q.abort();
  });
  EXPECT_FALSE(q.push(std::make_shared<Batch>()));
  aborter.join();
  EXPECT_EQ(q.pop(0), nullptr);
}

}  // namespace
}  // namespace haco::rootfs
