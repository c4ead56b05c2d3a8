namespace haco::cli {}
