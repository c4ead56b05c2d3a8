#include "rootfs/file_caps.hpp"

#include <endian.h>
#include <linux/capability.h>

#include <cstring>

namespace haco::rootfs {
namespace {

std::uint32_t le32_at(const std::string& v, std::size_t offset) {
  std::uint32_t x;
  std::memcpy(&x, v.data() + offset, 4);
  return le32toh(x);
}

void put_le32(std::string& v, std::size_t offset, std::uint32_t x) {
  x = htole32(x);
  std::memcpy(v.data() + offset, &x, 4);
}

std::optional<std::uint32_t> revision_of(const std::string& v) {
  if (v.size() < 4) return std::nullopt;
  std::uint32_t rev = le32_at(v, 0) & VFS_CAP_REVISION_MASK;
  if (rev == VFS_CAP_REVISION_1 && v.size() == XATTR_CAPS_SZ_1) return rev;
  if (rev == VFS_CAP_REVISION_2 && v.size() == XATTR_CAPS_SZ_2) return rev;
  if (rev == VFS_CAP_REVISION_3 && v.size() == XATTR_CAPS_SZ_3) return rev;
  return std::nullopt;
}

}  // namespace

std::optional<std::uint32_t> file_caps_rootid(const std::string& value) {
  auto rev = revision_of(value);
  if (!rev) return std::nullopt;
  return *rev == VFS_CAP_REVISION_3 ? le32_at(value, XATTR_CAPS_SZ_2) : 0;
}

std::optional<std::string> rewrite_file_caps(const std::string& value, std::uint32_t root_uid) {
  auto rev = revision_of(value);
  if (!rev) return std::nullopt;
  std::string out(XATTR_CAPS_SZ_3, '\0');
  std::uint32_t flags = le32_at(value, 0) & VFS_CAP_FLAGS_EFFECTIVE;
  put_le32(out, 0, VFS_CAP_REVISION_3 | flags);
  // permitted/inheritable, low word; v1 has no high word.
  put_le32(out, 4, le32_at(value, 4));
  put_le32(out, 8, le32_at(value, 8));
  if (*rev != VFS_CAP_REVISION_1) {
    put_le32(out, 12, le32_at(value, 12));
    put_le32(out, 16, le32_at(value, 16));
  }
  put_le32(out, 20, root_uid);
  return out;
}

}  // namespace haco::rootfs
