// write(2) until every byte is out, through short writes and EINTR.
#pragma once

#include <cstddef>

namespace haco {

// False on an error (errno says which; EIO for a write of 0 bytes).
bool write_all(int fd, const void* data, std::size_t size);

}  // namespace haco
