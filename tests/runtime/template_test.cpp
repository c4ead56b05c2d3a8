// templates/busybox-httpd.haco through the DSL and the expander, started
// for real: busybox httpd answers on the instance's port.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include <fmt/format.h>

#include "haco/fleet.hpp"
#include "haco/unique_fd.hpp"
#include "runtime/container_fixture.hpp"

namespace haco::testing {
namespace {

constexpr std::uint16_t kPort = 38001;

std::string http_get(std::uint16_t port) {
  UniqueFd sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return {};
  std::string request = "GET / HTTP/1.0\r\n\r\n";
  if (::write(sock.get(), request.data(), request.size()) != static_cast<ssize_t>(request.size())) return {};
  std::string response;
  char buf[4096];
  for (ssize_t n; (n = ::read(sock.get(), buf, sizeof buf)) > 0;) response.append(buf, static_cast<std::size_t>(n));
  return response;
}

TEST(BusyboxTemplate, AnInstanceServesItsPort) {
  if (::geteuid() != 0) GTEST_SKIP() << "starting containers needs root";
  std::uint32_t base = kPort * 100u;
  TempRootfs rootfs(base, fmt::format("busybox-{}", kPort));
  fleet::ExpandOptions options;
  options.base_environment = {{"HACO_ROOTFS_BASE", rootfs.dir().string()}, {"HACO_BUSYBOX_IMAGE", busybox_image()}};
  auto instances = fleet::expand(std::string(HACO_SOURCE_DIR) + "/templates/busybox-httpd.haco", {kPort}, options);
  ASSERT_EQ(instances.size(), 1u);
  const ContainerSpec& spec = instances.front().container;
  ASSERT_EQ(spec.rootfs, rootfs.path().string());
  ASSERT_EQ(spec.uid_map, (std::vector<IdMapping>{{0, base, 100}}));

  const char* fleet = "haco-rt-template";
  CgroupGuard cg(cgroups::InstanceCgroup::create(test_fleet_cgroup(fleet), spec.name, spec.cgroup), test_fleet_cgroup(fleet));
  runtime::LaunchRequest req;
  req.instance = instances.front();
  req.log_path = (rootfs.dir() / "init.log").string();
  req.cgroup = cg.get();
  Container c(req);

  std::string response;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((response = http_get(kPort)).empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_NE(response.find("200 OK"), std::string::npos) << response << read_file(req.log_path);
  EXPECT_NE(response.find("inside a haco-fleet container"), std::string::npos) << response;
  EXPECT_EQ(status_field(c.pid(), "NSpid"), fmt::format("{}\t1", c.pid()));
}

}  // namespace
}  // namespace haco::testing
