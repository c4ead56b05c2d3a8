#include <gtest/gtest.h>

#include "haco/bootstrap_plan.hpp"

namespace haco::fleet {
namespace {

const std::string kRoot = "/var/lib/haconiwa/haconiwa-test-28001";
const std::string kImage = "/var/lib/haconiwa/images/haconiwa-image-php-tester.tar.gz";

ContainerSpec seed_container() {
  ContainerSpec c;
  c.name = "haconiwa-test-28001";
  c.rootfs = kRoot;
  c.uid_map = {{0, 2800100, 100}};
  c.gid_map = {{0, 2800100, 100}};
  return c;
}

// The commands the seed's block issues for a port whose rootfs is missing.
std::vector<std::string> seed_commands() {
  return {"mkdir -p " + kRoot,
          "tar xf " + kImage + " -C " + kRoot,
          "mknod -m 444 " + kRoot + "/dev/random c 1 9",
          "mknod -m 444 " + kRoot + "/dev/urandom c 1 9",
          "chown -R 2800100:2800100 " + kRoot};
}

std::vector<std::string> words_of(const std::string& command) {
  std::string reason;
  std::vector<std::string> out;
  for (const auto& w : split_shell_words(command, reason)) out.push_back(w.and_operator ? "<&&>" : w.text);
  if (!reason.empty()) out = {"REFUSED: " + reason};
  return out;
}

std::string reason_for(std::vector<std::string> commands, ContainerSpec c = seed_container()) {
  BootstrapPlanResult result = plan_bootstrap(commands, c);
  if (result.plan) return "(recognised)";
  return result.reason;
}

TEST(ShellWords, QuotesAndEscapesMakeWordsAsTheShellWould) {
  using V = std::vector<std::string>;
  EXPECT_EQ(words_of("tar  xf\t/a.tar -C /r"), (V{"tar", "xf", "/a.tar", "-C", "/r"}));
  EXPECT_EQ(words_of("mkdir -p '/a b' \"/c d\" /e\\ f"), (V{"mkdir", "-p", "/a b", "/c d", "/e f"}));
  EXPECT_EQ(words_of("echo 'it'\\''s' \"a\\\"b\""), (V{"echo", "it's", "a\"b"}));
  EXPECT_EQ(words_of("echo '$HOME | *' \"x;y\""), (V{"echo", "$HOME | *", "x;y"}));
  EXPECT_EQ(words_of("cd /r && tar xf /a"), (V{"cd", "/r", "<&&>", "tar", "xf", "/a"}));
  EXPECT_EQ(words_of("cd /r&&tar xf /a"), (V{"cd", "/r", "<&&>", "tar", "xf", "/a"}));
  EXPECT_EQ(words_of("tar --file=/a.tar x"), (V{"tar", "--file=/a.tar", "x"}));
}

TEST(ShellWords, WhatMakesTheShellDoMoreIsRefusedWithItsName) {
  EXPECT_EQ(words_of("tar xf /a | cat")[0], "REFUSED: a pipe");
  EXPECT_EQ(words_of("tar xf /a > /log")[0], "REFUSED: a redirection");
  EXPECT_EQ(words_of("tar xf /a 2>&1")[0], "REFUSED: a redirection");
  EXPECT_EQ(words_of("mkdir /a; rm -rf /")[0], "REFUSED: a `;`");
  EXPECT_EQ(words_of("sleep 1 &")[0], "REFUSED: `&`");
  EXPECT_EQ(words_of("tar xf $IMAGE")[0], "REFUSED: a variable or expansion");
  EXPECT_EQ(words_of("tar xf \"${IMAGE}\"")[0], "REFUSED: a variable or expansion");
  EXPECT_EQ(words_of("tar xf `ls`")[0], "REFUSED: a command substitution");
  EXPECT_EQ(words_of("chown -R 1:1 /r/*")[0], "REFUSED: a glob");
  EXPECT_EQ(words_of("rm /r/file?")[0], "REFUSED: a glob");
  EXPECT_EQ(words_of("mkdir ~/x")[0], "REFUSED: a tilde expansion");
  EXPECT_EQ(words_of("mkdir /x # note")[0], "REFUSED: a comment");
  EXPECT_EQ(words_of("PATH=/tmp tar xf /a")[0], "REFUSED: a variable assignment");
  EXPECT_EQ(words_of("mkdir /a\nmkdir /b")[0], "REFUSED: more than one line");
  EXPECT_EQ(words_of("(cd /r; tar xf /a)")[0], "REFUSED: a subshell");
  EXPECT_EQ(words_of("mkdir /r/{a,b}")[0], "REFUSED: braces");
  EXPECT_EQ(words_of("echo 'open")[0], "REFUSED: an unclosed quote");
  EXPECT_EQ(words_of("&& tar xf /a")[0], "REFUSED: `&&` without a command on each side");
}

TEST(BootstrapPlan, TheSeedsBlockIsRecognised) {
  BootstrapPlanResult result = plan_bootstrap(seed_commands(), seed_container());
  ASSERT_TRUE(result.plan) << result.reason;
  EXPECT_EQ(result.plan->archive, kImage);
  EXPECT_EQ(result.plan->root, kRoot);
  EXPECT_EQ(result.plan->directories, std::vector<std::string>{kRoot});
  ASSERT_TRUE(result.plan->chown);
  EXPECT_EQ(result.plan->chown->first, 2800100u);
  ASSERT_EQ(result.plan->device_nodes.size(), 2u);
  EXPECT_EQ(result.plan->device_nodes[0].path, kRoot + "/dev/random");
  EXPECT_EQ(result.plan->device_nodes[0].type, 'c');
  EXPECT_EQ(result.plan->device_nodes[0].major, 1u);
  EXPECT_EQ(result.plan->device_nodes[0].minor, 9u);
}

TEST(BootstrapPlan, EveryUsualSpellingOfTheExtractionIsRecognised) {
  const std::string chown = "chown -R 2800100:2800100 " + kRoot;
  for (const std::string& tar : {
           "tar xf " + kImage + " -C " + kRoot,
           "tar xzf " + kImage + " -C " + kRoot + "/",
           "tar xvzpf " + kImage + " --directory " + kRoot,
           "tar -xf " + kImage + " -C " + kRoot,
           "tar -x -z -f " + kImage + " -C" + kRoot,
           "tar -xJf" + kImage + " --directory=" + kRoot,
           "tar --extract --file=" + kImage + " --directory=" + kRoot + " --numeric-owner --same-owner",
           "tar --extract --zstd --file " + kImage + " -C " + kRoot,
           "/bin/tar -C " + kRoot + " -xf " + kImage,
           "cd " + kRoot + " && tar xf " + kImage,
           "tar xf '" + kImage + "' -C \"" + kRoot + "\"",
       }) {
    SCOPED_TRACE(tar);
    EXPECT_EQ(reason_for({tar, chown}), "(recognised)");
    EXPECT_EQ(plan_bootstrap({tar, chown}, seed_container()).plan->archive, kImage);
  }
  EXPECT_EQ(reason_for({"mkdir -p /var/lib/haconiwa", "/bin/mkdir --parents " + kRoot, "tar xf " + kImage + " -C " + kRoot,
                        "chown --recursive 2800100.2800100 " + kRoot}),
            "(recognised)");
}

TEST(BootstrapPlan, CommandsOutsideTheIdiomAreNamedWithTheReason) {
  const std::string tar = "tar xf " + kImage + " -C " + kRoot;
  const std::string chown = "chown -R 2800100:2800100 " + kRoot;
  EXPECT_EQ(reason_for({tar + " | cat", chown}), "`" + tar + " | cat`: a pipe is not part of the idiom");
  EXPECT_EQ(reason_for({tar + " >/tmp/log", chown}), "`" + tar + " >/tmp/log`: a redirection is not part of the idiom");
  EXPECT_EQ(reason_for({tar, "curl -o /tmp/x http://example/", chown}),
            "`curl -o /tmp/x http://example/`: curl is not a command the engine knows (mkdir -p, tar, chown -R, mknod)");
  EXPECT_NE(reason_for({"tar xf " + kImage + " -C /srv/other", chown}).find("not the rootfs"), std::string::npos);
  EXPECT_NE(reason_for({"tar xf " + kImage, chown}).find("without -C or cd"), std::string::npos);
  EXPECT_NE(reason_for({"tar xf images/php.tar -C " + kRoot, chown}).find("not an absolute path"), std::string::npos);
  EXPECT_NE(reason_for({tar + " etc/passwd", chown}).find("only some members"), std::string::npos);
  EXPECT_NE(reason_for({tar + " --strip-components=1", chown}).find("--strip-components=1 is not known"),
            std::string::npos);
  EXPECT_NE(reason_for({"tar tf " + kImage + " -C " + kRoot, chown}).find("tar option t is not known"),
            std::string::npos);
  EXPECT_NE(reason_for({"tar cf " + kImage + " -C " + kRoot, chown}).find("tar option c is not known"),
            std::string::npos);
  EXPECT_NE(reason_for({tar, tar, chown}).find("a second tar"), std::string::npos);
  EXPECT_NE(reason_for({chown, tar}).find("chown before tar"), std::string::npos);
  EXPECT_NE(reason_for({tar, "chown -R 0:0 " + kRoot}).find("not the container root's host ids 2800100:2800100"),
            std::string::npos);
  EXPECT_NE(reason_for({tar, "chown -R apache:apache " + kRoot}).find("only numeric ids"), std::string::npos);
  EXPECT_NE(reason_for({tar, "chown 2800100:2800100 " + kRoot}).find("without -R"), std::string::npos);
  EXPECT_NE(reason_for({tar, "chown -R 2800100:2800100 " + kRoot + "/var"}).find("not the rootfs"), std::string::npos);
  EXPECT_NE(reason_for({tar}).find("no `chown -R`"), std::string::npos);
  EXPECT_NE(reason_for({"mkdir -p /srv/elsewhere", tar, chown}).find("neither the rootfs"), std::string::npos);
  EXPECT_NE(reason_for({tar, "mknod -m 444 /dev/sda b 8 0", chown}).find("outside the rootfs"), std::string::npos);
  EXPECT_NE(reason_for({"cd /tmp && rm -rf " + kRoot}).find("`&&` joins commands only as"), std::string::npos);
  EXPECT_EQ(reason_for({}), "the block runs no command");
  EXPECT_EQ(reason_for({"chown -R 2800100:2800100 " + kRoot}),
            "`chown -R 2800100:2800100 " + kRoot + "`: chown before tar");
}

TEST(BootstrapPlan, WithoutAUserNamespaceNoChownIsNeededAndNoneIsAccepted) {
  ContainerSpec c = seed_container();
  c.uid_map.clear();
  c.gid_map.clear();
  const std::string tar = "tar xf " + kImage + " -C " + kRoot;
  EXPECT_EQ(reason_for({tar}, c), "(recognised)");
  EXPECT_NE(reason_for({tar, "chown -R 2800100:2800100 " + kRoot}, c).find("without a user namespace mapping"),
            std::string::npos);
}

}  // namespace
}  // namespace haco::fleet
