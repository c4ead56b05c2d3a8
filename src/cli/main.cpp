#include "cli/commands.hpp"

int main(int argc, char** argv) { return haco::cli::run(argc, argv); }
