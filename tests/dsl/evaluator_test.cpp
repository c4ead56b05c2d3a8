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
    b.tar_options = []
  end
end
)",
                                                {});
  EXPECT_EQ(tarball.bootstrap, (Bootstrap{BootstrapKind::tarball, "/images/php.tar.gz", {}, ""}));

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

TEST(Dsl, OciBootstrapNeedsNoInitCommandAndLeavesUnsetThingsUnset) {
  dsl::Evaluator evaluator;
  ContainerSpec oci = evaluator.evaluate("o.haco", R"(Haconiwa.define do |config|
  config.name = "o"
  config.chroot_to "/srv/o"
  config.bootstrap do |b|
    b.strategy = "oci"
    b.image = "/srv/images/php:8.2"
  end
end
)",
                                         {});
  EXPECT_EQ(oci.bootstrap.kind, BootstrapKind::oci);
  EXPECT_EQ(oci.bootstrap.image, "/srv/images/php:8.2");
  EXPECT_TRUE(oci.command.empty()) << "the image's Entrypoint and Cmd may give it";
  EXPECT_EQ(oci.workdir, "") << "unset, not /: the image's WorkingDir may give it";
  EXPECT_EQ(oci.user, "");

  ContainerSpec own = evaluator.evaluate("u.haco", R"(Haconiwa.define do |config|
  config.name = "u"
  config.init_command = "/bin/true"
  config.chroot_to "/srv/u"
  config.workdir = "/"
  config.user = "www-data:staff"
end
)",
                                         {});
  EXPECT_EQ(own.workdir, "/");
  EXPECT_EQ(own.user, "www-data:staff");

  EXPECT_NE(error_of(R"(Haconiwa.define do |config|
  config.name = "n"
  config.chroot_to "/srv/n"
end
)").find("config.init_command is not set"),
            std::string::npos)
      << "without an OCI image a command is still needed";
  EXPECT_NE(error_of(R"(Haconiwa.define do |config|
  config.bootstrap do |b|
    b.strategy = "oci"
    b.image = "images/php"
  end
end
)").find("b.image must be an absolute path"),
            std::string::npos);
  EXPECT_NE(error_of(R"(Haconiwa.define do |config|
  config.bootstrap do |b|
    b.strategy = "oci"
  end
end
)").find("needs b.image"),
            std::string::npos);
  EXPECT_NE(error_of(R"(Haconiwa.define do |config|
  config.user = "a:b:c"
end
)").find("at most one ':'"),
            std::string::npos);
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
  config.cgroup(:v2)["memory.max"] = 64 * 1024 * 1024
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
  EXPECT_EQ(s.cgroup, (std::vector<CgroupSetting>{{"memory.max", "67108864"}}));
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

// Every number a definition gives is checked against a range where it is
// given: the error names the file, the line, the setting and the range.
TEST(Dsl, NumbersOutsideTheirRangePointAtTheLine) {
  const std::string prefix = "Haconiwa.define do |config|\n  config.name = \"x\"\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"config.cgroup[\"cpu.cfs_quota_us\"] = 500",
       "cgroup[\"cpu.cfs_quota_us\"] = \"500\" is out of range or malformed: expected -1 (no limit) or 1000 to "
       "17592186044415 (microseconds)"},
      {"config.cgroup[\"cpu.cfs_quota_us\"] = 17592186044416", "cgroup[\"cpu.cfs_quota_us\"] = \"17592186044416\""},
      {"config.cgroup[\"cpu.cfs_period_us\"] = 2000000", "expected 1000 to 1000000 (microseconds)"},
      {"config.cgroup[\"cpu.max\"] = \"max 10\"", "expected \"QUOTA [PERIOD]\" with QUOTA max or 1000 to"},
      {"config.cgroup[\"pids.max\"] = 0", "cgroup[\"pids.max\"] = \"0\" is out of range or malformed: expected max or 1 "
                                          "to 4194304"},
      {"config.cgroup[\"pids.max\"] = 1.5", "cgroup[\"pids.max\"] = \"1.5\""},
      {"config.cgroup[\"memory.limit_in_bytes\"] = -2", "expected -1 (no limit) or 0 to 9223372036854775807 (bytes)"},
      {"config.cgroup[\"cpu.shares\"] = 1", "expected 2 to 262144"},
      {"config.cgroup[\"cpuset.cpus\"] = \"0-9000\"", "from 0 to 8191"},
      {"config.cgroup[\"cpu.no_such_knob\"] = 1", "unknown cgroup key \"cpu.no_such_knob\""},
      {"config.stop_signal = 65", "stop_signal 65 is out of range: 1 to 64, or a name"},
      {"config.stop_signal = 0", "stop_signal 0 is out of range"},
      {"config.add_mount_point \"tmpfs\", to: \"/t\", fs: \"tmpfs\", options: \"size=0\"",
       "add_mount_point tmpfs option size=0: expected a size from 4k to 1t"},
      {"config.add_mount_point \"tmpfs\", to: \"/t\", fs: \"tmpfs\", options: \"size=2t\"", "option size=2t: expected"},
      {"config.add_mount_point \"tmpfs\", to: \"/t\", fs: \"tmpfs\", options: {size: \"101%\"}",
       "option size=101%: a share of memory must be from 1 to 100, got 101"},
      {"config.add_mount_point \"tmpfs\", to: \"/t\", fs: \"tmpfs\", options: \"nr_inodes=0\"",
       "option nr_inodes=0: expected a count of inodes from 1 to 4294967295"},
      {"config.add_mount_point \"tmpfs\", to: \"/t\", fs: \"tmpfs\", options: \"nr_blocks=99999999999999999999\"",
       "option nr_blocks=99999999999999999999: expected a count of pages"},
      {"config.add_mount_point \"tmpfs\", to: \"/t\", fs: \"tmpfs\", options: \"mode=8777\"",
       "option mode=8777: expected an octal mode from 0 to 7777"},
      {"config.add_mount_point \"tmpfs\", to: \"/t\", fs: \"tmpfs\", options: \"uid=4294967295\"",
       "option uid=4294967295 must be from 0 to 4294967294"},
      {"config.namespace.set_uid_mapping min: 0, max: 4294967296, offset: 1",
       "set_uid_mapping max must be from 0 to 4294967295, got 4294967296"},
      {"config.namespace.set_uid_mapping min: 0, max: 9, offset: 4294967290",
       "set_uid_mapping: offset 4294967290 + 10 ids goes past 4294967295"},
      {"config.namespace.set_uid_mapping min: 0, max: 9, offset: 3000000000\n"
       "  config.namespace.set_uid_mapping min: 5, max: 20, offset: 3000000100",
       "bad.haco:4: set_uid_mapping: ids 5..20 inside overlap 0..9 of an earlier mapping"},
      {"config.namespace.set_gid_mapping min: 0, max: 9, offset: 3000000000\n"
       "  config.namespace.set_gid_mapping min: 10, max: 19, offset: 3000000005",
       "bad.haco:4: set_gid_mapping: host ids 3000000005..3000000014 overlap 3000000000..3000000009"},
      {"341.times { |i| config.namespace.set_uid_mapping min: i, max: i, offset: 3000000000 + i }",
       "set_uid_mapping: at most 340 mappings (the kernel's limit)"},
  };
  for (const auto& [line, expected] : cases) {
    std::string e = error_of(prefix + "  " + line + "\n  config.init_command = \"/bin/true\"\n  config.chroot_to "
                                                   "\"/srv/x\"\nend\n");
    EXPECT_NE(e.find(expected), std::string::npos) << line << "\n  gave: " << e;
    EXPECT_EQ(e.rfind("bad.haco:", 0), 0u) << e;
    if (expected.rfind("bad.haco:", 0) != 0) {
      EXPECT_EQ(e.rfind("bad.haco:3: ", 0), 0u) << line << "\n  gave: " << e;
    }
  }
  // Within range, and the forms the seed uses.
  dsl::Evaluator evaluator;
  ContainerSpec s = evaluator.evaluate("ok.haco", prefix + R"(  config.init_command = "/bin/true"
  config.chroot_to "/srv/x"
  config.cgroup["cpu.cfs_quota_us"] = -1
  config.cgroup["cpu.cfs_period_us"] = 1000000
  config.cgroup["pids.max"] = "max"
  config.stop_signal = 64
  config.add_mount_point "tmpfs", to: "/t", fs: "tmpfs", options: "size=1t,nr_inodes=4k,mode=1777,uid=0"
  config.add_mount_point "tmpfs", to: "/u", fs: "tmpfs", options: {size: "100%"}
  config.namespace.set_uid_mapping min: 0, max: 9, offset: 3000000000
  config.namespace.set_uid_mapping min: 10, max: 19, offset: 3000000010
  config.namespace.set_gid_mapping min: 0, max: 19, offset: 3000000000
end
)",
                                       {});
  EXPECT_EQ(s.stop_signal, 64);
  EXPECT_EQ(s.uid_map.size(), 2u);
}

// config.rootfs_owner is the host owner of the rootfs's root: the host ids the
// container's uid 0 and gid 0 map to, or 0:0 without a mapping. Anything else
// is refused at the rootfs_owner line, naming both values, wherever the
// mappings are given.
TEST(Dsl, RootfsOwnerMustBeTheContainersRoot) {
  auto definition = [](const std::string& owner, const std::string& maps) {
    return "Haconiwa.define do |config|\n  config.name = \"x\"\n  config.init_command = \"/bin/true\"\n"
           "  config.chroot_to \"/srv/x\"\n  config.rootfs_owner " +
           owner + "\n" + maps + "end\n";
  };
  const std::string mapped =
      "  config.namespace.set_uid_mapping min: 0, max: 99, offset: 1004200\n"
      "  config.namespace.set_gid_mapping min: 0, max: 99, offset: 1004300\n";
  dsl::Evaluator evaluator;
  EXPECT_EQ(evaluator.evaluate("ok.haco", definition("uid: 1004200, gid: 1004300", mapped), {}).rootfs_owner,
            (Owner{1004200, 1004300}));
  EXPECT_EQ(evaluator.evaluate("ok.haco", definition("uid: 0, gid: 0", ""), {}).rootfs_owner, (Owner{0, 0}));

  EXPECT_EQ(error_of(definition("uid: 1004201, gid: 1004300", mapped)),
            "bad.haco:5: rootfs_owner uid: 1004201, gid: 1004300 does not match the mapping: the container's uid 0 "
            "is host uid 1004200 (set_uid_mapping), which owns the rootfs, not 1004201");
  EXPECT_EQ(error_of(definition("uid: 1004200, gid: 1004200", mapped)),
            "bad.haco:5: rootfs_owner uid: 1004200, gid: 1004200 does not match the mapping: the container's gid 0 "
            "is host gid 1004300 (set_gid_mapping), which owns the rootfs, not 1004200");
  EXPECT_EQ(error_of(definition("uid: 1000, gid: 1000", "")),
            "bad.haco:5: rootfs_owner uid: 1000, gid: 1000: without set_uid_mapping the container's root uid is the "
            "host's 0, which owns the rootfs; uid 1000 does not match (give uid: 0, or map the container's ids with "
            "set_uid_mapping)");
  std::string from_one =
      "  config.namespace.set_uid_mapping min: 1, max: 99, offset: 1004201\n"
      "  config.namespace.set_gid_mapping min: 1, max: 99, offset: 1004201\n";
  EXPECT_NE(error_of(definition("uid: 1004200, gid: 1004200", from_one))
                .find("bad.haco:5: rootfs_owner uid: 1004200, gid: 1004200: set_uid_mapping does not map the "
                      "container's uid 0"),
            std::string::npos);
}

// A tarball bootstrap never runs tar: options for it would be silently
// meaningless, so a definition giving any is refused at that line.
TEST(Dsl, TarOptionsAreRefused) {
  std::string source = R"(Haconiwa.define do |config|
  config.name = "t"
  config.init_command = "/bin/true"
  config.chroot_to "/srv/t"
  config.bootstrap do |b|
    b.strategy = "tarball"
    b.archive_path = "/images/php.tar.gz"
    b.tar_options = "--xattrs --numeric-owner"
  end
end
)";
  std::string e = error_of(source);
  EXPECT_EQ(e.rfind("bad.haco:8: b.tar_options [\"--xattrs\", \"--numeric-owner\"] is refused: haco-fleet's rootfs "
                    "engine does not run tar, it reads the archive and extracts every entry itself",
                    0),
            0u)
      << e;
  EXPECT_NE(e.find("so --xattrs --numeric-owner would mean nothing; remove b.tar_options"), std::string::npos) << e;
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
