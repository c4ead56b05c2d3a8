// Time to evaluate a definition and expand a port range, per instance.
#include <benchmark/benchmark.h>

#include "haco/fleet.hpp"

namespace {

std::string seed_definition() { return std::string(HACO_SOURCE_DIR) + "/../shared/seed/phpinfo-test.haco"; }

// One evaluation of the seed's definition on a warm interpreter.
void BM_EvaluateSeedDefinition(benchmark::State& state) {
  haco::dsl::Evaluator evaluator;
  haco::dsl::Environment env{{"APACHE_PORT", "10001"}, {"PORT", "10001"}};
  for (auto _ : state) benchmark::DoNotOptimize(evaluator.evaluate_file(seed_definition(), env));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EvaluateSeedDefinition)->Unit(benchmark::kMicrosecond);

// A whole expansion of N ports (interpreter start, N evaluations, the fleet
// validation); the per-instance time is the reciprocal of items/s.
void BM_ExpandSeedFleet(benchmark::State& state) {
  std::vector<std::uint16_t> ports;
  for (int i = 0; i < state.range(0); ++i) ports.push_back(static_cast<std::uint16_t>(10001 + i));
  for (auto _ : state) benchmark::DoNotOptimize(haco::fleet::expand(seed_definition(), ports, {}));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_ExpandSeedFleet)->Arg(1)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
