// Evaluates .haco files on embedded mruby. The Ruby side (prelude.rb) records
// what the definition asks for and exports it as plain hashes and arrays;
// this file turns that into a validated ContainerSpec.
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "dsl/cgroup_builtins.hpp"
#include "dsl/definition_file.hpp"
#include "dsl/mruby_value.hpp"
#include "dsl/security_builtins.hpp"
#include "dsl/spec_from_definition.hpp"
#include "haco/dsl.hpp"
#include "haco/error.hpp"
#include "haco/shell_command.hpp"

#include <mruby.h>
#include <mruby/array.h>
#include <mruby/compile.h>
#include <mruby/hash.h>
#include <mruby/proc.h>
#include <mruby/string.h>
#include <mruby/variable.h>

extern char** environ;

namespace haco::dsl {

extern const std::string_view kPreludeSource;

namespace {

constexpr const char* kPreludeName = "(haco-fleet prelude)";

// Per-evaluation data the C functions called from Ruby need. It lives on
// the C++ side only: no Ruby code can reach or change it.
struct CallContext {
  // Only run_bootstrap_block sets it: evaluating a definition (expand, and
  // the expansion `up` starts with) can never run a command.
  bool commands_allowed = false;
  const std::atomic<bool>* cancel = nullptr;
  std::string shell_log;
  int last_status = 0;
};

// mruby-io and mruby-socket (compiled into Debian's libmruby) open files,
// pipes, processes (IO.popen, Kernel#open("|cmd")) and sockets. None of it
// is part of the DSL: every class method of IO and its subclasses that does
// more than look at a path is removed, and so are their constructors,
// Kernel#open and Addrinfo's resolver. Run before the prelude, which adds the
// File and Dir queries the DSL offers.
constexpr std::string_view kSealHostAccess = R"(
keep = [:basename, :dirname, :extname, :join, :expand_path, :_concat_path, :_getwd, :_gethome, :path,
        :exist?, :exists?, :directory?, :file?, :size, :size?, :zero?, :symlink?, :pipe?, :socket?]
Object.constants.each do |name|
  c = Object.const_get(name)
  next unless c.is_a?(Class) && (c.ancestors.include?(IO) || c.name == "Addrinfo")
  (c.singleton_methods - keep).each { |m| c.singleton_class.send(:undef_method, m) }
  c.send(:undef_method, :initialize) if c.instance_methods.include?(:initialize)
end
Kernel.send(:undef_method, :open) if Kernel.instance_methods.include?(:open)
)";

CallContext* call_context(mrb_state* mrb) { return static_cast<CallContext*>(mrb->ud); }

// Haconiwa.__path_kind(path) -> :directory, :file, :other or nil
mrb_value path_kind(mrb_state* mrb, mrb_value) {
  const char* path = nullptr;
  mrb_get_args(mrb, "z", &path);
  struct stat st {};
  if (::stat(path, &st) != 0) return mrb_nil_value();
  const char* kind = S_ISDIR(st.st_mode) ? "directory" : S_ISREG(st.st_mode) ? "file" : "other";
  return mrb_symbol_value(mrb_intern_cstr(mrb, kind));
}

// Haconiwa.__shell(command) -> stdout of `/bin/sh -c command`. The one way
// from Ruby to a command, and only while run_bootstrap_block runs: anywhere
// else (however it is called: directly, through send, method(...) or a
// redefined Kernel#`) it raises HacoDeferredCommand, exactly as backticks do
// while a definition is evaluated, and runs nothing.
enum class ShellOutcome { ran, failed_to_start, cancelled };

// The C++ half of __shell: every C++ object is gone when it returns, so the
// caller may raise (mruby raises with longjmp).
ShellOutcome shell_call(mrb_state* mrb, CallContext& ctx, const char* command, mrb_value& output,
                        std::array<char, 512>& error) {
  try {
    ShellResult result = haco::run_shell(command, {std::nullopt, true, ctx.cancel});
    ctx.last_status = result.exit_code;
    ctx.shell_log += "$ " + std::string(command) + "\n";
    if (result.exit_code != 0) ctx.shell_log += "  (exit status " + std::to_string(result.exit_code) + ")\n";
    if (result.cancelled) return ShellOutcome::cancelled;
    output = mrb_str_new(mrb, result.output.data(), static_cast<mrb_int>(result.output.size()));
    return ShellOutcome::ran;
  } catch (const std::exception& e) {
    std::snprintf(error.data(), error.size(), "%s", e.what());
    return ShellOutcome::failed_to_start;
  }
}

mrb_value run_shell(mrb_state* mrb, mrb_value) {
  const char* command = nullptr;
  mrb_get_args(mrb, "z", &command);
  CallContext* ctx = call_context(mrb);
  if (!ctx || !ctx->commands_allowed) mrb_raise(mrb, mrb_class_get(mrb, "HacoDeferredCommand"), command);
  if (ctx->cancel && ctx->cancel->load()) mrb_raise(mrb, mrb_class_get(mrb, "HacoInterrupted"), "interrupted");
  mrb_value output = mrb_nil_value();
  std::array<char, 512> error{};
  ShellOutcome outcome = shell_call(mrb, *ctx, command, output, error);
  if (outcome == ShellOutcome::cancelled)
    mrb_raisef(mrb, mrb_class_get(mrb, "HacoInterrupted"), "interrupted while `%s` ran", command);
  if (outcome == ShellOutcome::failed_to_start)
    mrb_raisef(mrb, E_RUNTIME_ERROR, "starting /bin/sh for `%s`: %s", command, error.data());
  return output;
}

mrb_value last_status(mrb_state* mrb, mrb_value) {
  auto* ctx = call_context(mrb);
  return mrb_fixnum_value(ctx ? ctx->last_status : 0);
}

}  // namespace

std::string read_definition_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    InputError error(Error::from_errno("open", path, errno));
    error.with_context("reading the definition");
    throw error;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Environment process_environment() {
  Environment env;
  for (char** entry = environ; entry && *entry; ++entry) {
    std::string_view item(*entry);
    auto eq = item.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(std::string(item.substr(0, eq)), std::string(item.substr(eq + 1)));
  }
  return env;
}

struct Evaluator::State {
  mrb_state* mrb = nullptr;
  RClass* haconiwa = nullptr;

  ~State() {
    if (mrb) mrb_close(mrb);
  }

  // Compiled definitions, by file name; a definition is parsed once however
  // many ports it is evaluated for. The procs are registered with the GC.
  struct Compiled {
    std::string source;
    mrb_value proc;
  };
  std::map<std::string, Compiled> compiled;

  mrb_value compile(const std::string& file_name, const std::string& source) {
    auto it = compiled.find(file_name);
    if (it != compiled.end() && it->second.source == source) return it->second.proc;
    mrbc_context* cxt = mrbc_context_new(mrb);
    mrbc_filename(mrb, cxt, file_name.c_str());
    cxt->capture_errors = true;
    cxt->no_exec = true;
    mrb_value proc = mrb_load_nstring_cxt(mrb, source.data(), source.size(), cxt);
    mrbc_context_free(mrb, cxt);
    raise_pending_exception(file_name);
    if (it != compiled.end()) mrb_gc_unregister(mrb, it->second.proc);
    mrb_gc_register(mrb, proc);
    compiled[file_name] = Compiled{source, proc};
    return proc;
  }

  // Runs the definition and returns the defined config, or throws.
  mrb_value load(const std::string& file_name, const std::string& source) {
    mrb_value proc = compile(file_name, source);
    mrb_top_run(mrb, mrb_proc_ptr(proc), mrb_top_self(mrb), 0);
    raise_pending_exception(file_name);
    mrb_value defined = mrb_funcall(mrb, mrb_obj_value(haconiwa), "__defined", 0);
    raise_pending_exception(file_name);
    if (mrb_nil_p(defined)) throw InputError(file_name + ": no Haconiwa.define block");
    return defined;
  }

  void reset(const Environment& env, bool running_bootstrap) {
    mrb_value hash = mrb_hash_new(mrb);
    for (const auto& [key, value] : env)
      mrb_hash_set(mrb, hash, mrb_str_new(mrb, key.data(), static_cast<mrb_int>(key.size())),
                   mrb_str_new(mrb, value.data(), static_cast<mrb_int>(value.size())));
    mrb_funcall(mrb, mrb_obj_value(haconiwa), "__reset", 2, hash, mrb_bool_value(running_bootstrap));
    raise_pending_exception(kPreludeName);
  }

  void raise_pending_exception(const std::string& file_name) {
    if (!mrb->exc) return;
    mrb_value exc = mrb_obj_value(mrb->exc);
    mrb->exc = nullptr;
    throw InputError(describe_exception(mrb, exc, file_name));
  }
};

Evaluator::Evaluator() : state_(std::make_unique<State>()) {
  state_->mrb = mrb_open();
  if (!state_->mrb) throw Error("mrb_open: cannot create the mruby interpreter");
  mrb_state* mrb = state_->mrb;
  state_->haconiwa = mrb_define_module(mrb, "Haconiwa");
  mrb_define_module_function(mrb, state_->haconiwa, "__path_kind", path_kind, MRB_ARGS_REQ(1));
  mrb_define_module_function(mrb, state_->haconiwa, "__shell", run_shell, MRB_ARGS_REQ(1));
  mrb_define_module_function(mrb, state_->haconiwa, "__last_status", last_status, MRB_ARGS_NONE());
  define_security_builtins(mrb, state_->haconiwa);
  define_cgroup_builtins(mrb, state_->haconiwa);
  // Raised when `up` is interrupted during a bootstrap block. An Exception,
  // not a StandardError: a `rescue => e` in the block does not swallow it.
  mrb_define_class(mrb, "HacoInterrupted", mrb->eException_class);
  mrb_load_nstring(mrb, kSealHostAccess.data(), kSealHostAccess.size());
  if (mrb->exc) {
    mrb_value exc = mrb_obj_value(mrb->exc);
    mrb->exc = nullptr;
    throw Error("sealing the interpreter: " + describe_exception(mrb, exc, kPreludeName));
  }
  mrbc_context* cxt = mrbc_context_new(mrb);
  mrbc_filename(mrb, cxt, kPreludeName);
  mrb_load_nstring_cxt(mrb, kPreludeSource.data(), kPreludeSource.size(), cxt);
  mrbc_context_free(mrb, cxt);
  if (mrb->exc) {
    mrb_value exc = mrb_obj_value(mrb->exc);
    mrb->exc = nullptr;
    throw Error("loading the DSL prelude: " + describe_exception(mrb, exc, kPreludeName));
  }
}

Evaluator::~Evaluator() = default;

ContainerSpec Evaluator::evaluate(const std::string& file_name, const std::string& source, const Environment& env) {
  mrb_state* mrb = state_->mrb;
  int arena = mrb_gc_arena_save(mrb);
  CallContext ctx;
  mrb->ud = &ctx;
  try {
    state_->reset(env, false);
    mrb_value config = state_->load(file_name, source);
    mrb_value exported = mrb_funcall(mrb, config, "__export", 0);
    state_->raise_pending_exception(file_name);
    nlohmann::json definition = to_json_value(mrb, exported);
    mrb->ud = nullptr;
    mrb_gc_arena_restore(mrb, arena);
    return spec_from_definition(definition, file_name);
  } catch (...) {
    mrb->ud = nullptr;
    mrb_gc_arena_restore(mrb, arena);
    throw;
  }
}

ContainerSpec Evaluator::evaluate_file(const std::string& path, const Environment& env) {
  return evaluate(path, read_definition_file(path), env);
}

std::string Evaluator::run_bootstrap_block(const std::string& path, const Environment& env,
                                           const std::atomic<bool>* cancel) {
  std::string source = read_definition_file(path);
  mrb_state* mrb = state_->mrb;
  int arena = mrb_gc_arena_save(mrb);
  CallContext ctx;
  ctx.commands_allowed = true;
  ctx.cancel = cancel;
  mrb->ud = &ctx;
  try {
    state_->reset(env, true);
    state_->load(path, source);
  } catch (Error& e) {
    mrb->ud = nullptr;
    mrb_gc_arena_restore(mrb, arena);
    e.with_context("running the bootstrap block of " + path);
    throw;
  }
  mrb->ud = nullptr;
  mrb_gc_arena_restore(mrb, arena);
  return ctx.shell_log;
}

}  // namespace haco::dsl
