#include <gtest/gtest.h>

#include <filesystem>

#include "haco/dsl.hpp"
#include "haco/error.hpp"
#include "test_support.hpp"

namespace haco {
namespace {

using testing::TempDir;

dsl::Environment port_env(int port) {
  return {{"APACHE_PORT", std::to_string(port)}, {"PORT", std::to_string(port)}};
}

std::string error_of(const std::string& source, const dsl::Environment& env = {}) {
  dsl::Evaluator evaluator;
  try {
    evaluator.evaluate("bad.haco", source, env);
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

const char* kMinimal = R"(Haconiwa.define do |config|
  config.name = "web"
  config.init_command = ["/bin/true"]
  config.chroot_to "/srv/web"
end
)";

TEST(Dsl, SeedDefinitionEvaluatesIntoEveryConstruct) {
  dsl::Evaluator evaluator;
  ContainerSpec s = evaluator.evaluate_file(testing::seed_file("phpinfo-test.haco"), port_env(10042));
  EXPECT_EQ(s.name, "haconiwa-test-10042");
  EXPECT_EQ(s.rootfs, "/var/lib/haconiwa/haconiwa-test-10042");
  EXPECT_EQ(s.command, (std::vector<std::string>{"/usr/bin/env", "APACHE_PORT=10042",
                                                   "APACHE_PID=/var/run/httpd/httpd.10042.pid", "/usr/sbin/httpd",
                                                   "-DFOREGROUND"}));
  EXPECT_TRUE(s.daemonize);
  EXPECT_EQ(s.namespaces, (std::vector<Namespace>{Namespace::ipc, Namespace::uts, Namespace::mount, Namespace::pid,
                                                  Namespace::user}));
  // max is inclusive: 0..99 inside onto port*100 .. port*100+99.
  EXPECT_EQ(s.uid_map, (std::vector<IdMapping>{{0, 1004200, 100}}));
  EXPECT_EQ(s.gid_map, (std::vector<IdMapping>{{0, 1004200, 100}}));
  ASSERT_TRUE(s.rootfs_owner);
  EXPECT_EQ(*s.rootfs_owner, (Owner{1004200, 1004200}));
  ASSERT_EQ(s.mounts.size(), 1u);
  EXPECT_EQ(s.mounts[0], (MountPoint{"tmpfs", "/tmp", "tmpfs", "", false}));
  EXPECT_EQ(s.network_etc_host_root, std::optional<std::string>("/etc"));
  EXPECT_EQ(s.independent_mounts,
            (std::vector<IndependentMount>{IndependentMount::procfs, IndependentMount::sysfs,
                                           IndependentMount::devtmpfs, IndependentMount::devpts,
                                           IndependentMount::shm}));
  EXPECT_EQ(s.cgroup, (std::vector<CgroupSetting>{{"cpu.cfs_period_us", "100000"}, {"cpu.cfs_quota_us", "30000"}}));
  EXPECT_EQ(s.bootstrap.kind, BootstrapKind::block);
}

TEST(Dsl, SeedDebugSwitchesComeFromTheEnvironment) {
  dsl::Evaluator evaluator;
  auto env = port_env(10001);
  env["DEBUG"] = "bash";
  ContainerSpec bash = evaluator.evaluate_file(testing::seed_file("phpinfo-test.haco"), env);
  EXPECT_EQ(bash.command, std::vector<std::string>{"/bin/bash"});
  EXPECT_FALSE(bash.daemonize);
  env["DEBUG"] = "apache";
  ContainerSpec apache = evaluator.evaluate_file(testing::seed_file("phpinfo-test.haco"), env);
  EXPECT_EQ(apache.command.back(), "-X");
}

TEST(Dsl, PreviousSeedDefinitionEvaluates) {
  dsl::Evaluator evaluator;
  ContainerSpec s = evaluator.evaluate_file(testing::seed_file("phpinfo-test-previous.haco"), port_env(10001));
  EXPECT_EQ(s.name, "haconiwa-2d057697-10001");
  EXPECT_EQ(s.rootfs, "/var/lib/haconiwa/2d057697");
  EXPECT_TRUE(s.uid_map.empty());
  EXPECT_EQ(s.namespaces, (std::vector<Namespace>{Namespace::ipc, Namespace::uts}));
  EXPECT_EQ(s.bootstrap.kind, BootstrapKind::none);
}

TEST(Dsl, BootstrapBlockIsStoredNotRunWhileEvaluating) {
  TempDir dir;
  std::string marker = (dir.path() / "ran").string();
  std::string source = R"(Haconiwa.define do |config|
  config.name = "web"
  config.init_command = "/bin/true"
  config.chroot_to ")" + (dir.path() / "root").string() + R"("
  config.bootstrap do |b|
    `touch )" + marker + R"(`
  end
end
)";
  std::string path = dir.file("web.haco", source);
  dsl::Evaluator evaluator;
  ContainerSpec s = evaluator.evaluate_file(path, {});
  EXPECT_EQ(s.bootstrap.kind, BootstrapKind::block);
  EXPECT_FALSE(std::filesystem::exists(marker));

  std::string log = evaluator.run_bootstrap_block(path, {});
  EXPECT_TRUE(std::filesystem::exists(marker));
  EXPECT_NE(log.find("touch"), std::string::npos);
}

TEST(Dsl, DeclarativeBootstrapForms) {
  dsl::Evaluator evaluator;
  ContainerSpec tarball = evaluator.evaluate("t.haco", R"(Haconiwa.define do |config|
  config.name = "t"
  config.init_command = "/bin/true"
  config.chroot_to "/srv/t"
  config.bootstrap do |b|
    b.strategy = "tarball"
    b.archive_path = "/images/php.tar.gz"
    b.tar_options = ["--xattrs"]
  end
end
)",
                                                {});
  EXPECT_EQ(tarball.bootstrap,
            (Bootstrap{BootstrapKind::tarball, "/images/php.tar.gz", {"--xattrs"}, ""}));

  ContainerSpec shell = evaluator.evaluate("s.haco", R"(Haconiwa.define do |config|
  config.name = "s"
  config.init_command = "/bin/true"
  config.chroot_to "/srv/s"
  config.bootstrap do |b|
    b.strategy = "shell"
    b.code = "mkdir -p /srv/s"
  end
end
)",
                                              {});
  EXPECT_EQ(shell.bootstrap.kind, BootstrapKind::shell);
  EXPECT_EQ(shell.bootstrap.code, "mkdir -p /srv/s");
}

TEST(Dsl, PathnameDirAndFileHelpers) {
  TempDir dir;
  dir.file("present/file", "x");
  std::string source = R"(Haconiwa.define do |config|
  base = Pathname.new(")" + dir.path().string() + R"(")
  config.name = Dir.exist?(base.join("present")) && File.exist?("#{base}/present/file") && !Dir.exists?(base + "absent") ? "yes" : "no"
  config.init_command = [base.join("bin", "app").to_s]
  config.chroot_to base
  config.add_mount_point "/host/data", to: base.join("data"), readonly: true
  config.add_mount_point "tmpfs", to: "/run", fs: "tmpfs", options: {size: "16m", mode: "755"}
  config.environ = {"A" => 1}
  config.workdir = "/srv"
  config.stop_signal = "SIGQUIT"
  config.namespace.unshare "net"
  config.cgroup(:v2)["memory.max"] = "64M"
end
)";
  dsl::Evaluator evaluator;
  ContainerSpec s = evaluator.evaluate("p.haco", source, {});
  EXPECT_EQ(s.name, "yes");
  EXPECT_EQ(s.command, std::vector<std::string>{(dir.path() / "bin/app").string()});
  EXPECT_EQ(s.rootfs, dir.path().string());
  ASSERT_EQ(s.mounts.size(), 2u);
  EXPECT_EQ(s.mounts[0], (MountPoint{"/host/data", "/data", "", "", true}));
  EXPECT_EQ(s.mounts[1], (MountPoint{"tmpfs", "/run", "tmpfs", "size=16m,mode=755", false}));
  EXPECT_EQ(s.environment, std::vector<std::string>{"A=1"});
  EXPECT_EQ(s.workdir, "/srv");
  EXPECT_EQ(s.stop_signal, 3);
  EXPECT_TRUE(s.has_namespace(Namespace::net));
  EXPECT_EQ(s.cgroup, (std::vector<CgroupSetting>{{"memory.max", "64M"}}));
}

TEST(Dsl, EnvironmentIsFreshForEachEvaluation) {
  dsl::Evaluator evaluator;
  const char* source = R"(Haconiwa.define do |config|
  config.name = "w-#{ENV['PORT']}-#{ENV['EXTRA'] || 'none'}"
  config.init_command = "/bin/true"
  config.chroot_to "/srv/w"
end
)";
  EXPECT_EQ(evaluator.evaluate("w.haco", source, {{"PORT", "1"}, {"EXTRA", "x"}}).name, "w-1-x");
  EXPECT_EQ(evaluator.evaluate("w.haco", source, {{"PORT", "2"}}).name, "w-2-none");
}

TEST(Dsl, UnknownMethodNamesFileLineAndMethod) {
  std::string e = error_of("Haconiwa.define do |config|\n  config.name = \"x\"\n  config.no_such_thing 1\nend\n");
  EXPECT_NE(e.find("bad.haco:3"), std::string::npos) << e;
  EXPECT_NE(e.find("no_such_thing"), std::string::npos) << e;
}

TEST(Dsl, SyntaxErrorNamesFileAndLine) {
  std::string e = error_of("Haconiwa.define do |config|\n  config.name = \"x\" +\nend\n");
  EXPECT_NE(e.find("bad.haco:3"), std::string::npos) << e;
  EXPECT_NE(e.find("syntax error"), std::string::npos) << e;
}

TEST(Dsl, ExceptionMessageAndLine) {
  std::string e = error_of("Haconiwa.define do |config|\n  raise \"no image here\"\nend\n");
  EXPECT_NE(e.find("bad.haco:2: no image here"), std::string::npos) << e;
}

TEST(Dsl, SetterValidationPointsAtTheLine) {
  std::string prefix = "Haconiwa.define do |config|\n  config.name = \"x\"\n";
  EXPECT_NE(error_of(prefix + "  config.namespace.set_uid_mapping min: 0, offset: 1\nend\n").find("bad.haco:3: set_uid_mapping needs max:"),
            std::string::npos);
  EXPECT_NE(error_of(prefix + "  config.namespace.set_gid_mapping min: 5, max: 1, offset: 1\nend\n").find("max (1) is below min (5)"),
            std::string::npos);
  EXPECT_NE(error_of(prefix + "  config.namespace.unshare \"time\"\nend\n").find("unknown namespace \"time\""),
            std::string::npos);
  EXPECT_NE(error_of(prefix + "  config.mount_independent \"cdrom\"\nend\n").find("mount_independent \"cdrom\""),
            std::string::npos);
  EXPECT_NE(error_of(prefix + "  config.rootfs_owner uid: 1\nend\n").find("rootfs_owner expects uid: and gid:"),
            std::string::npos);
  EXPECT_NE(error_of(prefix + "  config.add_mount_point \"tmpfs\", fs: \"tmpfs\"\nend\n").find("needs to:"),
            std::string::npos);
  EXPECT_NE(error_of(prefix + "  config.bootstrap { |b| b.strategy = \"git\" }\nend\n").find("strategy \"git\" is not supported"),
            std::string::npos);
  EXPECT_NE(error_of(prefix + "  config.cgroup(:v3)\nend\n").find("cgroup version"), std::string::npos);
}

TEST(Dsl, WholeDefinitionChecks) {
  EXPECT_NE(error_of("Haconiwa.define do |config|\nend\n").find("config.name is not set"), std::string::npos);
  EXPECT_NE(error_of("Haconiwa.define do |config|\n config.name = \"a\"\nend\n").find("init_command is not set"),
            std::string::npos);
  EXPECT_NE(error_of("Haconiwa.define do |config|\n config.name = \"a\"\n config.init_command = \"x\"\nend\n")
                .find("chroot_to is not set"),
            std::string::npos);
  EXPECT_NE(error_of("Haconiwa.define do |config|\n config.name = \"a b\"\nend\n")
                .find("bad.haco: config.name 'a b' is not valid: it contains ' '"),
            std::string::npos);
  EXPECT_NE(error_of("Haconiwa.define do |config|\n config.name = \"..\"\nend\n").find("config.name '..' is not valid"),
            std::string::npos);
  EXPECT_NE(error_of("config = 1\n").find("no Haconiwa.define block"), std::string::npos);
  std::string relative_root = std::string(kMinimal);
  relative_root.replace(relative_root.find("\"/srv/web\""), 10, "\"srv/web\"");
  EXPECT_NE(error_of(relative_root).find("must be an absolute path"), std::string::npos);
  std::string etc_elsewhere = std::string(kMinimal);
  etc_elsewhere.insert(etc_elsewhere.rfind("end"), "  config.mount_network_etc(\"/other\", host_root: \"/etc\")\n");
  EXPECT_NE(error_of(etc_elsewhere).find("mount_network_etc is given /other"), std::string::npos);
}

TEST(Dsl, MissingFileIsAnInputError) {
  dsl::Evaluator evaluator;
  EXPECT_THROW(evaluator.evaluate_file("/nonexistent/x.haco", {}), InputError);
}

}  // namespace
}  // namespace haco
