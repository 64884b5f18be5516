#include "cli/commands.hpp"

int main(int argc, char** argv) { return lina::cli::main_entry(argc, argv); }
