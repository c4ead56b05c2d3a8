// One visitor out of several lambdas, for std::visit over a variant:
//   std::visit(Overloaded{[](const A&) {...}, [](const B&) {...}}, v);
#pragma once

namespace haco {

template <typename... Handlers>
struct Overloaded : Handlers... {
  using Handlers::operator()...;
};
template <typename... Handlers>
Overloaded(Handlers...) -> Overloaded<Handlers...>;

}  // namespace haco
