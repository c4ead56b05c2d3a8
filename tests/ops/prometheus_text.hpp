// A strict reader of the Prometheus text format as node-exporter's textfile
// collector takes it, for tests: one HELP and one TYPE per family before its
// samples, each family's lines together, no timestamps, label values with
// only the three escapes, counters named *_total, histogram buckets by rising
// le, cumulative, ending at +Inf equal to _count, and a final newline. Every
// rule broken is a test failure.
#pragma once

#include <cmath>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace haco::testing {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;  // unescaped
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> types;  // family -> type
  std::vector<Sample> samples;

  std::vector<Sample> named(const std::string& name, const std::map<std::string, std::string>& with = {}) const {
    std::vector<Sample> out;
    for (const auto& s : samples) {
      if (s.name != name) continue;
      bool match = true;
      for (const auto& [k, v] : with)
        if (auto it = s.labels.find(k); it == s.labels.end() || it->second != v) match = false;
      if (match) out.push_back(s);
    }
    return out;
  }
  double value(const std::string& name, const std::map<std::string, std::string>& with) const {
    auto found = named(name, with);
    EXPECT_EQ(found.size(), 1u) << name;
    return found.empty() ? std::nan("") : found.front().value;
  }
};

// The family a sample belongs to: its name, or for a histogram's series the
// name without _bucket, _sum or _count.
inline std::string family_of(const std::string& name, const std::map<std::string, std::string>& types) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s(suffix);
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      auto base = name.substr(0, name.size() - s.size());
      if (auto it = types.find(base); it != types.end() && it->second == "histogram") return base;
    }
  }
  return name;
}

// Reads `text` strictly; every rule broken is a test failure.
inline Exposition parse_strictly(const std::string& text) {
  Exposition out;
  if (!text.empty()) {
    EXPECT_EQ(text.back(), '\n') << "the text does not end with a newline";
  }
  static const std::regex help(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*)");
  static const std::regex type(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped))");
  static const std::regex sample(R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+))");
  static const std::regex label(R"(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)\"(,|$))");
  std::set<std::string> helped, typed, finished;
  std::string current;  // the family whose lines these are
  auto enter = [&](const std::string& family) {
    if (family == current) return;
    EXPECT_FALSE(finished.count(family)) << family << ": its lines are not together";
    if (!current.empty()) finished.insert(current);
    current = family;
  };
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, help)) {
      EXPECT_TRUE(helped.insert(m[1]).second) << "a second HELP for " << m[1];
      EXPECT_FALSE(typed.count(m[1])) << m[1] << ": HELP after TYPE";
      enter(m[1]);
    } else if (std::regex_match(line, m, type)) {
      EXPECT_TRUE(typed.insert(m[1]).second) << "a second TYPE for " << m[1];
      out.types[m[1]] = m[2];
      enter(m[1]);
    } else if (std::regex_match(line, m, sample)) {
      Sample s;
      s.name = m[1];
      std::string labels = m[2].matched ? std::string(m[2]).substr(1, m[2].length() - 2) : "";
      for (std::smatch l; !labels.empty(); labels = l.suffix()) {
        if (!std::regex_search(labels, l, label) || l.position() != 0) {
          ADD_FAILURE() << "bad label set in: " << line;
          break;
        }
        std::string value, raw = l[2];
        for (std::size_t k = 0; k < raw.size(); ++k)
          value += raw[k] == '\\' ? (raw[++k] == 'n' ? '\n' : raw[k]) : raw[k];
        EXPECT_TRUE(s.labels.emplace(l[1], value).second) << "label repeated in: " << line;
      }
      const std::string v = m[3];
      std::size_t used = 0;
      if (v == "+Inf") {
        s.value = INFINITY;
      } else {
        EXPECT_NO_THROW(s.value = std::stod(v, &used)) << line;
        EXPECT_EQ(used, v.size()) << "not a number: " << line;
      }
      const auto family = family_of(s.name, out.types);
      EXPECT_TRUE(typed.count(family) && helped.count(family)) << s.name << ": a sample before its HELP and TYPE";
      if (out.types[family] == "counter") {
        EXPECT_TRUE(s.name.ends_with("_total")) << s.name;
      }
      enter(family);
      out.samples.push_back(std::move(s));
    } else {
      ADD_FAILURE() << "not a line of the text format (or with a timestamp): '" << line << "'";
    }
  }
  // Histograms: per label set, buckets by rising le, cumulative, +Inf last
  // and equal to _count; a _sum for each.
  for (const auto& [family, kind] : out.types) {
    if (kind != "histogram") continue;
    std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> series;
    for (const auto& s : out.named(family + "_bucket")) {
      auto labels = s.labels;
      EXPECT_TRUE(labels.count("le")) << family;
      double le = labels["le"] == "+Inf" ? INFINITY : std::stod(labels["le"]);
      labels.erase("le");
      series[labels].push_back({le, s.value});
    }
    for (const auto& [labels, buckets] : series) {
      for (std::size_t k = 1; k < buckets.size(); ++k) {
        EXPECT_LT(buckets[k - 1].first, buckets[k].first) << family << ": le not rising";
        EXPECT_LE(buckets[k - 1].second, buckets[k].second) << family << ": buckets not cumulative";
      }
      EXPECT_FALSE(buckets.empty()) << family;
      if (buckets.empty()) continue;
      EXPECT_TRUE(std::isinf(buckets.back().first)) << family << ": no +Inf bucket last";
      EXPECT_EQ(buckets.back().second, out.value(family + "_count", labels)) << family;
      EXPECT_EQ(out.named(family + "_sum", labels).size(), 1u) << family;
    }
  }
  return out;
}

}  // namespace haco::testing
