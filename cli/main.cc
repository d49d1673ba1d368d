#include "cli/icectl.h"

int main(int argc, char** argv) { return ice::cli::Main(argc, argv); }
