# Turns a text file into a C++ source defining `haco::dsl::kPreludeSource`.
file(READ ${IN} content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
file(WRITE ${OUT} "// Generated from ${IN}; do not edit.\n#include <string_view>\nnamespace haco::dsl {\nstatic const char kBytes[] = {${bytes} 0x00};\nextern const std::string_view kPreludeSource(kBytes, sizeof(kBytes) - 1);\n}\n")
