# The haconiwa DSL, as haco-fleet understands it. Loaded once into the
# embedded mruby state; a definition file is then evaluated against it once
# per port. Setters validate their arguments here, so an error points at the
# line of the definition that caused it. The result is exported as plain
# hashes and arrays (Haconiwa::Base#__export) that the C++ side turns into a
# ContainerSpec.

# Raised by a command (backticks, system) met while a definition is only being
# evaluated, outside a bootstrap block (whose commands are recorded instead,
# docs/bootstrap.md). It is an Exception, not a StandardError, so a
# `rescue => e` in a definition does not swallow it.
# What the DSL's own checks raise (Haconiwa.__fail): never taken for a
# bootstrap block that merely needs its commands' output.
class HacoDefinitionError < ArgumentError
end

class HacoDeferredCommand < Exception
end

ENV = {}

class Pathname
  def initialize(path)
    unless path.is_a?(String) || path.is_a?(Pathname)
      raise TypeError, "Pathname.new expects a String or Pathname, got #{path.class}"
    end
    @path = path.to_s
  end

  def to_s
    @path.dup
  end
  alias to_str to_s
  alias to_path to_s

  def inspect
    "#<Pathname:#{@path}>"
  end

  def ==(other)
    other.is_a?(Pathname) && other.to_s == @path
  end
  alias eql? ==

  def hash
    @path.hash
  end

  def absolute?
    @path.start_with?("/")
  end

  def relative?
    !absolute?
  end

  # Joins like Ruby's Pathname#join: an absolute part starts over.
  def join(*parts)
    result = @path
    parts.each do |part|
      part = part.to_s
      if part.start_with?("/")
        result = part
      elsif result.end_with?("/")
        result = result + part
      else
        result = result + "/" + part
      end
    end
    Pathname.new(result)
  end
  alias + join
  alias / join

  def basename
    Pathname.new(@path.split("/").last || "/")
  end

  def dirname
    parts = @path.split("/")
    parts.pop
    dir = parts.join("/")
    Pathname.new(dir.empty? ? (absolute? ? "/" : ".") : dir)
  end
  alias parent dirname

  def exist?
    Haconiwa.__path_kind(@path) != nil
  end

  def directory?
    Haconiwa.__path_kind(@path) == :directory
  end

  def file?
    Haconiwa.__path_kind(@path) == :file
  end
end

class Dir
  def self.exist?(path)
    Haconiwa.__path_kind(path.to_s) == :directory
  end

  def self.exists?(path)
    exist?(path)
  end
end

class File
  def self.exist?(path)
    Haconiwa.__path_kind(path.to_s) != nil
  end

  def self.exists?(path)
    exist?(path)
  end

  def self.directory?(path)
    Haconiwa.__path_kind(path.to_s) == :directory
  end

  def self.file?(path)
    Haconiwa.__path_kind(path.to_s) == :file
  end
end

module Kernel
  # Backticks and system run through /bin/sh only while a bootstrap block runs
  # for real. While a definition is evaluated, a bootstrap block's commands
  # are recorded (nothing runs; a backtick gives "" and system true) so that
  # `up` can recognise the tar + chown idiom (docs/bootstrap.md); anywhere
  # else they defer the block.
  def `(command)
    return Haconiwa.__record_command(command.to_s, "") if Haconiwa.__recording?
    raise HacoDeferredCommand, command.to_s unless Haconiwa.__running_bootstrap?
    Haconiwa.__shell(command.to_s)
  end

  # With several arguments each is one word, as Ruby's system runs them
  # without a shell: quoted for /bin/sh.
  def system(*args)
    command = args.size == 1 ? args[0].to_s : args.map { |a| "'" + a.to_s.gsub("'", "'\\\\''") + "'" }.join(" ")
    return Haconiwa.__record_command(command, true) if Haconiwa.__recording?
    raise HacoDeferredCommand, command unless Haconiwa.__running_bootstrap?
    Haconiwa.__shell(command)
    Haconiwa.__last_status == 0
  end
end

# haconiwa's seccomp gem: Seccomp::ARG(op, value[, value2]) is a condition
# on a system call's argument; the n-th ARG given to a rule tests argument n.
module Seccomp
  def self.ARG(op, value, value2 = nil)
    Haconiwa::SeccompArg.new(op, value, value2)
  end
end

module Haconiwa
  NAMESPACES = %w(mount mnt ns uts ipc pid net user cgroup)
  INDEPENDENT_MOUNTS = %w(procfs sysfs devtmpfs devpts shm)
  BOOTSTRAP_STRATEGIES = %w(tarball shell oci)
  SIGNALS = {
    "TERM" => 15, "INT" => 2, "QUIT" => 3, "KILL" => 9, "HUP" => 1, "USR1" => 10, "USR2" => 12,
    "WINCH" => 28
  }

  def self.__fail(message)
    raise HacoDefinitionError, message
  end

  # The kernel takes at most 340 lines in a uid_map or gid_map.
  MAX_ID_MAP_LINES = 340

  # A whole number from min to max: an Integer, or a String of digits.
  def self.__whole(value, what, min, max)
    unless value.is_a?(Integer)
      text = value.to_s
      digits = !text.empty? && text.each_char.all? { |c| c >= "0" && c <= "9" }
      __fail("#{what} must be a whole number from #{min} to #{max}, got #{value.inspect}") unless digits
      # More digits than any bound here has: out of range, not converted.
      __fail("#{what} must be from #{min} to #{max}, got #{text}") if text.size > 18
      value = text.to_i
    end
    __fail("#{what} must be from #{min} to #{max}, got #{value}") if value < min || value > max
    value
  end

  def self.__id(value, what)
    __whole(value, what, 0, 4294967295)
  end

  # A size as the kernel's memparse reads it ("64m", "1g", "4096"): digits and
  # an optional k, m, g, t suffix; nil when it is not one.
  SIZE_SUFFIXES = { "k" => 1024, "m" => 1048576, "g" => 1073741824, "t" => 1099511627776 }

  def self.__size(text)
    text = text.to_s
    factor = SIZE_SUFFIXES[text[-1].to_s.downcase] || 1
    digits = factor > 1 ? text[0..-2] : text
    return nil if digits.empty? || digits.size > 18 || !digits.each_char.all? { |c| c >= "0" && c <= "9" }
    value = digits.to_i
    # Past 2^62 it is out of every range here; the product would overflow.
    return nil if value > 4611686018427387904 / factor
    value * factor
  end

  # Where the caller of a DSL method is: its backtrace, kept so that a check
  # made later (once the whole definition is known) points at that line.
  def self.__here
    raise HacoDefinitionError, ""
  rescue HacoDefinitionError => e
    e.backtrace
  end

  def self.__fail_at(backtrace, message)
    error = HacoDefinitionError.new(message)
    error.set_backtrace(backtrace) if backtrace
    raise error
  end

  # The host id that id `inside` of the container maps to, or nil.
  def self.__host_id(map, inside)
    map.each do |min, offset, count|
      return offset + (inside - min) if inside >= min && inside < min + count
    end
    nil
  end

  # The keys of a hash argument, whether given as symbols or strings.
  def self.__option(hash, key)
    return hash[key] if hash.key?(key)
    hash[key.to_s]
  end

  def self.__option?(hash, key)
    hash.key?(key) || hash.key?(key.to_s)
  end

  class Bootstrap
    attr_reader :strategy, :archive_path, :tar_options, :code, :block, :image

    def initialize
      @strategy = nil
      @image = nil
      @archive_path = nil
      @tar_options = []
      @code = nil
      @block = nil
    end

    def strategy=(name)
      name = name.to_s
      unless BOOTSTRAP_STRATEGIES.include?(name)
        Haconiwa.__fail("bootstrap strategy #{name.inspect} is not supported (use one of: #{BOOTSTRAP_STRATEGIES.join(', ')})")
      end
      @strategy = name
    end

    def archive_path=(path)
      @archive_path = path.to_s
    end

    # An OCI layout directory or a docker archive, with an optional tag or
    # digest (docs/images.md, "OCI layouts and docker archives").
    def image=(reference)
      reference = reference.to_s
      Haconiwa.__fail("b.image must be an absolute path, got #{reference.inspect}") unless reference.start_with?("/")
      @image = reference
    end

    # tar is never run for a tarball bootstrap: the rootfs engine reads the
    # archive and writes every entry itself, so no tar option can apply.
    def tar_options=(options)
      given = options.is_a?(Array) ? options.map(&:to_s) : options.to_s.split(" ")
      unless given.empty?
        Haconiwa.__fail("b.tar_options #{given.inspect} is refused: haco-fleet's rootfs engine does not run tar, " \
                        "it reads the archive and extracts every entry itself (modes, times and xattrs kept, owners " \
                        "shifted into the instance's id range, device nodes never made), so #{given.join(' ')} " \
                        "would mean nothing; remove b.tar_options")
      end
      @tar_options = []
    end

    def code=(code)
      @code = code.to_s
    end

    def __defer(block, commands, recording_error)
      @block = block
      @commands = commands
      @recording_error = recording_error
    end

    def __export
      if @block
        { "strategy" => "block", "commands" => @commands, "recording_error" => @recording_error }
      elsif @strategy == "tarball"
        Haconiwa.__fail("bootstrap strategy \"tarball\" needs b.archive_path") unless @archive_path
        { "strategy" => "tarball", "archive_path" => @archive_path, "tar_options" => @tar_options }
      elsif @strategy == "oci"
        Haconiwa.__fail("bootstrap strategy \"oci\" needs b.image") unless @image
        { "strategy" => "oci", "image" => @image }
      elsif @strategy == "shell"
        Haconiwa.__fail("bootstrap strategy \"shell\" needs b.code") unless @code
        { "strategy" => "shell", "code" => @code }
      else
        { "strategy" => "none" }
      end
    end
  end

  class NamespaceConfig
    attr_reader :unshared, :uid_map, :gid_map

    def initialize
      @unshared = []
      @uid_map = []
      @gid_map = []
    end

    def unshare(name)
      name = name.to_s
      unless NAMESPACES.include?(name)
        Haconiwa.__fail("unknown namespace #{name.inspect} (known: mount, uts, ipc, pid, net, user, cgroup)")
      end
      @unshared << name unless @unshared.include?(name)
      self
    end

    # min..max (inclusive) inside the container map onto offset.. on the host.
    def set_uid_mapping(options)
      @uid_map << __mapping(options, "set_uid_mapping")
      unshare("user")
    end

    def set_gid_mapping(options)
      @gid_map << __mapping(options, "set_gid_mapping")
      unshare("user")
    end

    def __mapping(options, method)
      unless options.is_a?(Hash)
        Haconiwa.__fail("#{method} expects min:, max: and offset:, got #{options.inspect}")
      end
      [:min, :max, :offset].each do |key|
        Haconiwa.__fail("#{method} needs #{key}: (it takes min:, max: and offset:)") unless Haconiwa.__option?(options, key)
      end
      unknown = options.keys.map(&:to_s) - %w(min max offset)
      Haconiwa.__fail("#{method} does not know #{unknown.join(', ')} (it takes min:, max: and offset:)") unless unknown.empty?
      min = Haconiwa.__id(Haconiwa.__option(options, :min), "#{method} min")
      max = Haconiwa.__id(Haconiwa.__option(options, :max), "#{method} max")
      offset = Haconiwa.__id(Haconiwa.__option(options, :offset), "#{method} offset")
      Haconiwa.__fail("#{method}: max (#{max}) is below min (#{min})") if max < min
      count = max - min + 1
      if offset + count - 1 > 4294967295
        Haconiwa.__fail("#{method}: offset #{offset} + #{count} ids goes past 4294967295")
      end
      # What the kernel would refuse when the map is written, said here.
      map = method == "set_uid_mapping" ? @uid_map : @gid_map
      if map.size >= MAX_ID_MAP_LINES
        Haconiwa.__fail("#{method}: at most #{MAX_ID_MAP_LINES} mappings (the kernel's limit), this is one more")
      end
      map.each do |other_min, other_offset, other_count|
        if min < other_min + other_count && other_min < min + count
          Haconiwa.__fail("#{method}: ids #{min}..#{max} inside overlap #{other_min}..#{other_min + other_count - 1} of an earlier mapping")
        end
        if offset < other_offset + other_count && other_offset < offset + count
          Haconiwa.__fail("#{method}: host ids #{offset}..#{offset + count - 1} overlap #{other_offset}..#{other_offset + other_count - 1} of an earlier mapping")
        end
      end
      [min, offset, count]
    end
  end

  # config.capabilities: the bounding set, starting from haco-fleet's default
  # (docs/security.md). Calls apply in order: allow adds, drop removes, and
  # :all stands for every capability.
  class Capabilities
    def initialize
      @names = Haconiwa.__default_capabilities
    end

    def allow(*names)
      Haconiwa.__fail("capabilities.allow needs a capability name or :all") if names.empty?
      names.each do |name|
        if name.to_s == "all"
          @names = Haconiwa.__all_capabilities
        else
          cap = __capability(name, "allow")
          @names << cap unless @names.include?(cap)
        end
      end
      self
    end

    def drop(*names)
      Haconiwa.__fail("capabilities.drop needs a capability name or :all") if names.empty?
      names.each do |name|
        if name.to_s == "all"
          @names = []
        else
          @names.delete(__capability(name, "drop"))
        end
      end
      self
    end

    # haconiwa's way to start from every capability.
    def reset_to_privileged!
      @names = Haconiwa.__all_capabilities
      self
    end

    def __capability(name, method)
      cap = nil
      if name.is_a?(String) || name.is_a?(Symbol) || name.is_a?(Integer)
        cap = Haconiwa.__capability_name(name.to_s)
      end
      unless cap
        Haconiwa.__fail("capabilities.#{method}: unknown capability #{name.inspect} (names as in capabilities(7): \"cap_sys_time\", \"CAP_SYS_TIME\" or :sys_time)")
      end
      cap
    end

    def __export
      @names.dup
    end
  end

  # Seccomp::ARG's comparisons, by every name haconiwa's gem accepts.
  SECCOMP_COMPARISONS = {
    "==" => "eq", "eq" => "eq", "SCMP_CMP_EQ" => "eq",
    "!=" => "ne", "ne" => "ne", "SCMP_CMP_NE" => "ne",
    "<" => "lt", "lt" => "lt", "SCMP_CMP_LT" => "lt",
    "<=" => "le", "le" => "le", "SCMP_CMP_LE" => "le",
    ">" => "gt", "gt" => "gt", "SCMP_CMP_GT" => "gt",
    ">=" => "ge", "ge" => "ge", "SCMP_CMP_GE" => "ge",
    "=~" => "masked_eq", "masqed_eq" => "masked_eq", "masked_eq" => "masked_eq",
    "SCMP_CMP_MASKED_EQ" => "masked_eq"
  }

  # Actions of rules and of default:, by haconiwa's names and libseccomp's.
  SECCOMP_ACTIONS = {
    "allow" => "allow", "SCMP_ACT_ALLOW" => "allow",
    "kill" => "kill", "SCMP_ACT_KILL" => "kill", "SCMP_ACT_KILL_PROCESS" => "kill",
    "trap" => "trap", "SCMP_ACT_TRAP" => "trap"
  }

  # The calls haco-fleet makes after installing a definition's filter: the
  # handshake's last message, exec, and exit if exec fails.
  SECCOMP_LAUNCHER_CALLS = %w(sendto execve exit_group)

  class SeccompArg
    def initialize(op, value, value2)
      @op = SECCOMP_COMPARISONS[op.to_s]
      Haconiwa.__fail("Seccomp::ARG: unknown comparison #{op.inspect} (use :==, :!=, :<, :<=, :>, :>= or :=~)") unless @op
      __integer(value)
      if @op == "masked_eq"
        Haconiwa.__fail("Seccomp::ARG(:=~, mask, value) needs the value the masked argument must equal") if value2.nil?
        __integer(value2)
        @mask = value
        @value = value2
      else
        Haconiwa.__fail("Seccomp::ARG(#{op.inspect}, value) takes one value, got a second (#{value2.inspect})") unless value2.nil?
        @mask = 0
        @value = value
      end
    end

    def __integer(value)
      Haconiwa.__fail("Seccomp::ARG compares with an Integer, got #{value.inspect}") unless value.is_a?(Integer)
    end

    def __export(index)
      { "index" => index, "op" => @op, "value" => @value, "mask" => @mask }
    end
  end

  # The block's argument in config.seccomp.filter: rule.kill :mkdir,
  # rule.allow :read, Seccomp::ARG(:==, 0), rule.trap ...
  class SeccompRules
    attr_reader :rules

    def initialize
      @rules = []
    end

    def allow(syscall, *args)
      add_rule(:allow, syscall, *args)
    end

    def kill(syscall, *args)
      add_rule(:kill, syscall, *args)
    end

    def trap(syscall, *args)
      add_rule(:trap, syscall, *args)
    end

    def trace(syscall, *args)
      Haconiwa.__fail("rule.trace is not supported by haco-fleet (it needs a tracer process); use rule.kill or rule.trap")
    end

    def add_rule(action, syscall, *args)
      action = Haconiwa.__seccomp_action(action, "rule")
      name = nil
      if syscall.is_a?(String) || syscall.is_a?(Symbol) || syscall.is_a?(Integer)
        name = Haconiwa.__syscall_name(syscall.is_a?(Integer) ? syscall : syscall.to_s)
      end
      Haconiwa.__fail("rule.#{action}: unknown system call #{syscall.inspect}") unless name
      Haconiwa.__fail("rule.#{action} :#{name}: a call has 6 arguments, got #{args.size} Seccomp::ARG") if args.size > 6
      conditions = []
      args.each do |arg|
        unless arg.is_a?(SeccompArg)
          Haconiwa.__fail("rule.#{action} :#{name}: conditions are written Seccomp::ARG(op, value), got #{arg.inspect}")
        end
        conditions << arg.__export(conditions.size)
      end
      if conditions.empty?
        other = @rules.find { |r| r["syscall"] == name && r["args"].empty? && r["action"] != action }
        Haconiwa.__fail("rule.#{action} :#{name} contradicts rule.#{other["action"]} :#{name}") if other
      end
      @rules << { "action" => action, "syscall" => name, "args" => conditions }
      self
    end
  end

  def self.__seccomp_action(action, what)
    name = action.to_s
    if %w(errno SCMP_ACT_ERRNO trace SCMP_ACT_TRACE).include?(name)
      __fail("#{what}: the seccomp action #{action.inspect} is not supported (use :allow, :kill or :trap)")
    end
    found = SECCOMP_ACTIONS[name]
    __fail("#{what}: unknown seccomp action #{action.inspect} (use :allow, :kill or :trap)") unless found
    found
  end

  # config.seccomp: haco-fleet's default filter (on unless default_filter =
  # false) and the definition's own, haconiwa's filter(default: ...) { |rule| }.
  class SeccompConfig
    def initialize
      @default_filter = true
      @filter = nil
    end

    def default_filter=(on)
      unless on == true || on == false
        Haconiwa.__fail("seccomp.default_filter must be true or false, got #{on.inspect}")
      end
      @default_filter = on
    end

    def default_filter
      @default_filter
    end

    def filter(options = {}, &block)
      unless options.is_a?(Hash) && Haconiwa.__option?(options, :default)
        Haconiwa.__fail("seccomp.filter needs default: (:allow, :kill or :trap)")
      end
      unknown = options.keys.map(&:to_s) - %w(default)
      Haconiwa.__fail("seccomp.filter does not know #{unknown.join(', ')} (it takes default:)") unless unknown.empty?
      default = Haconiwa.__option(options, :default)
      default = Haconiwa.__seccomp_action(default.is_a?(Array) ? default.first : default, "seccomp.filter default:")
      Haconiwa.__fail("seccomp.filter needs a block: filter(default: :allow) { |rule| rule.kill :mkdir }") unless block
      recorder = SeccompRules.new
      block.call(recorder)
      __check_launcher_calls(default, recorder.rules)
      @filter = { "default" => default, "rules" => recorder.rules }
      self
    end

    # A filter that stops a call haco-fleet still makes after installing it
    # would kill the container before its init runs.
    def __check_launcher_calls(default, rules)
      SECCOMP_LAUNCHER_CALLS.each do |call|
        unconditional = rules.find { |r| r["syscall"] == call && r["args"].empty? }
        conditional = rules.any? { |r| r["syscall"] == call && !r["args"].empty? }
        action = unconditional ? unconditional["action"] : (conditional ? "allow" : default)
        next if action == "allow"
        Haconiwa.__fail("seccomp.filter must allow #{call} (haco-fleet calls #{SECCOMP_LAUNCHER_CALLS.join(', ')} after installing the filter, to start the init)")
      end
    end

    def __export
      { "default_filter" => @default_filter, "filter" => @filter }
    end
  end

  class CGroupConfig
    attr_reader :settings

    def initialize(settings)
      @settings = settings
    end

    def []=(key, value)
      key = key.to_s
      Haconiwa.__fail("cgroup key must not be empty") if key.empty?
      Haconiwa.__fail("cgroup[#{key.inspect}] needs a value") if value.nil?
      problem = Haconiwa.__cgroup_problem(key, value.to_s)
      Haconiwa.__fail(problem) if problem
      existing = @settings.index { |pair| pair[0] == key }
      if existing
        @settings[existing] = [key, value.to_s]
      else
        @settings << [key, value.to_s]
      end
    end

    def [](key)
      pair = @settings.find { |p| p[0] == key.to_s }
      pair && pair[1]
    end
  end

  class Base
    def initialize
      @name = nil
      @init_command = nil
      @daemonize = false
      @chroot_to = nil
      @namespace = NamespaceConfig.new
      @rootfs_owner = nil
      @mounts = []
      @network_etc = nil
      @independent = []
      @cgroup = []
      @bootstrap = Bootstrap.new
      @environ = {}
      @workdir = nil
      @user = nil
      @stop_signal = 15
      @capabilities = Capabilities.new
      @no_new_privs = false
      @seccomp = SeccompConfig.new
    end

    def name=(name)
      @name = name.to_s
    end

    def name
      @name
    end

    def init_command=(command)
      if command.is_a?(Array)
        Haconiwa.__fail("init_command must not be empty") if command.empty?
        @init_command = command.map(&:to_s)
      else
        words = command.to_s.split(" ")
        Haconiwa.__fail("init_command must not be empty") if words.empty?
        @init_command = words
      end
    end

    def init_command
      @init_command
    end

    alias command= init_command=

    def daemonize!
      @daemonize = true
    end

    def chroot_to(path)
      @chroot_to = path.to_s
    end
    alias rootfs= chroot_to

    def namespace
      @namespace
    end

    def rootfs_owner(options)
      unless options.is_a?(Hash) && Haconiwa.__option?(options, :uid) && Haconiwa.__option?(options, :gid)
        Haconiwa.__fail("rootfs_owner expects uid: and gid:, got #{options.inspect}")
      end
      @rootfs_owner = [Haconiwa.__id(Haconiwa.__option(options, :uid), "rootfs_owner uid"),
                       Haconiwa.__id(Haconiwa.__option(options, :gid), "rootfs_owner gid")]
      @rootfs_owner_at = Haconiwa.__here
    end

    # The rootfs's root belongs to the container's root: with a mapping, the
    # host ids that uid 0 and gid 0 map to; without one, the host's root.
    # Checked once the whole definition is known (the seed gives the owner
    # before the mappings), pointing at the rootfs_owner line.
    def __check_rootfs_owner
      return unless @rootfs_owner
      uid, gid = @rootfs_owner
      given = "rootfs_owner uid: #{uid}, gid: #{gid}"
      [["uid", uid, @namespace.uid_map, "set_uid_mapping"], ["gid", gid, @namespace.gid_map, "set_gid_mapping"]].each do |kind, id, map, setter|
        if map.empty?
          next if id == 0
          Haconiwa.__fail_at(@rootfs_owner_at, "#{given}: without #{setter} the container's root #{kind} is the host's 0, which owns the rootfs; #{kind} #{id} does not match (give #{kind}: 0, or map the container's ids with #{setter})")
        end
        root = Haconiwa.__host_id(map, 0)
        unless root
          Haconiwa.__fail_at(@rootfs_owner_at, "#{given}: #{setter} does not map the container's #{kind} 0, so no host #{kind} is the container's root to own the rootfs")
        end
        next if id == root
        Haconiwa.__fail_at(@rootfs_owner_at, "#{given} does not match the mapping: the container's #{kind} 0 is host #{kind} #{root} (#{setter}), which owns the rootfs, not #{id}")
      end
    end

    # add_mount_point SOURCE, to: TARGET, fs: TYPE, options: "a,b" or {a: 1}, readonly: bool
    def add_mount_point(source, options = {})
      unless options.is_a?(Hash) && Haconiwa.__option?(options, :to)
        Haconiwa.__fail("add_mount_point #{source.to_s.inspect} needs to: (the mount target)")
      end
      unknown = options.keys.map(&:to_s) - %w(to fs options readonly)
      Haconiwa.__fail("add_mount_point does not know #{unknown.join(', ')} (it takes to:, fs:, options:, readonly:)") unless unknown.empty?
      mount_options = Haconiwa.__option(options, :options)
      if mount_options.is_a?(Hash)
        mount_options = mount_options.map { |k, v| v == true ? k.to_s : "#{k}=#{v}" }.join(",")
      end
      __check_tmpfs_options(mount_options.to_s) if Haconiwa.__option(options, :fs).to_s == "tmpfs"
      @mounts << {
        "source" => source.to_s,
        "target" => Haconiwa.__option(options, :to).to_s,
        "fstype" => Haconiwa.__option(options, :fs).to_s,
        "options" => mount_options.to_s,
        "read_only" => Haconiwa.__option(options, :readonly) ? true : false
      }
    end

    # The numbers a tmpfs takes, each in a range: a size (never 0, which
    # would mean no limit), a count of inodes, a mode, an owner.
    TMPFS_MAX_BYTES = 1099511627776

    def __check_tmpfs_options(text)
      text.split(",").each do |option|
        name, value = option.split("=", 2)
        next if value.nil?
        what = "add_mount_point tmpfs option #{option}"
        case name
        when "size"
          if value.end_with?("%")
            Haconiwa.__whole(value[0..-2], "#{what}: a share of memory", 1, 100)
          else
            bytes = Haconiwa.__size(value)
            unless bytes && bytes >= 4096 && bytes <= TMPFS_MAX_BYTES
              Haconiwa.__fail("#{what}: expected a size from 4k to 1t (bytes, or with a k, m, g or t suffix) or a share from 1% to 100%")
            end
          end
        when "nr_blocks"
          blocks = Haconiwa.__size(value)
          unless blocks && blocks >= 1 && blocks <= TMPFS_MAX_BYTES / 4096
            Haconiwa.__fail("#{what}: expected a count of pages from 1 to #{TMPFS_MAX_BYTES / 4096}")
          end
        when "nr_inodes"
          inodes = Haconiwa.__size(value)
          unless inodes && inodes >= 1 && inodes <= 4294967295
            Haconiwa.__fail("#{what}: expected a count of inodes from 1 to 4294967295 (0 would mean no limit)")
          end
        when "mode"
          octal = !value.empty? && value.size <= 5 && value.each_char.all? { |c| c >= "0" && c <= "7" }
          Haconiwa.__fail("#{what}: expected an octal mode from 0 to 7777") unless octal && value.to_i(8) <= 07777
        when "uid", "gid"
          Haconiwa.__whole(value, what, 0, 4294967294)
        end
      end
    end

    def mount_network_etc(root, options = {})
      host_root = options.is_a?(Hash) ? Haconiwa.__option(options, :host_root) : nil
      @network_etc = { "root" => root.to_s, "host_root" => (host_root || "/etc").to_s }
    end

    def mount_independent(name)
      name = name.to_s
      unless INDEPENDENT_MOUNTS.include?(name)
        Haconiwa.__fail("mount_independent #{name.inspect} is not known (use one of: #{INDEPENDENT_MOUNTS.join(', ')})")
      end
      @independent << name unless @independent.include?(name)
    end

    # cgroup["cpu.cfs_quota_us"] = 30000; cgroup(:v2)["cpu.max"] = "30000 100000"
    def cgroup(version = nil)
      unless version.nil? || %w(v1 v2).include?(version.to_s)
        Haconiwa.__fail("cgroup version #{version.inspect} is not known (use :v1 or :v2)")
      end
      CGroupConfig.new(@cgroup)
    end

    def environ=(hash)
      Haconiwa.__fail("environ expects a Hash, got #{hash.class}") unless hash.is_a?(Hash)
      @environ = {}
      hash.each { |k, v| @environ[k.to_s] = v.to_s }
    end

    def environ
      @environ
    end

    def workdir=(path)
      path = path.to_s
      Haconiwa.__fail("workdir must be an absolute path, got #{path.inspect}") unless path.start_with?("/")
      @workdir = path
    end

    def workdir
      @workdir
    end

    # The user the init runs as: "name", "uid", "uid:gid" or "name:group",
    # resolved in the container's /etc/passwd and /etc/group.
    def user=(user)
      user = user.to_s
      Haconiwa.__fail("user must not be empty") if user.empty?
      Haconiwa.__fail("user #{user.inspect}: at most one ':'") if user.count(":") > 1
      @user = user
    end

    def user
      @user
    end

    def stop_signal=(signal)
      if signal.is_a?(Integer)
        number = signal
      else
        name = signal.to_s.upcase
        name = name[3..-1] if name.start_with?("SIG")
        number = SIGNALS[name]
        Haconiwa.__fail("stop_signal #{signal.inspect} is not known (use one of: #{SIGNALS.keys.join(', ')})") unless number
      end
      if number < 1 || number > 64
        Haconiwa.__fail("stop_signal #{signal} is out of range: 1 to 64, or a name (#{SIGNALS.keys.join(', ')})")
      end
      @stop_signal = number
    end

    def capabilities
      @capabilities
    end

    # A haco-fleet extension: no exec in the container can gain privileges
    # (setuid files, file capabilities).
    def no_new_privs=(on)
      Haconiwa.__fail("no_new_privs must be true or false, got #{on.inspect}") unless on == true || on == false
      @no_new_privs = on
    end

    def no_new_privs
      @no_new_privs
    end

    def seccomp
      @seccomp
    end

    # With a block: the declarative form (b.strategy = ...) is recorded now; a
    # block that runs commands is stored and runs when the rootfs is prepared.
    def bootstrap(&block)
      return @bootstrap unless block
      recorder = Bootstrap.new
      if Haconiwa.__running_bootstrap?
        block.call(recorder)
        @bootstrap = recorder
        return @bootstrap
      end
      Haconiwa.__start_recording
      begin
        block.call(recorder)
        commands = Haconiwa.__stop_recording
        if recorder.strategy && commands.empty?
          @bootstrap = recorder
        else
          @bootstrap = Bootstrap.new
          @bootstrap.__defer(block, commands, nil)
        end
      rescue HacoDefinitionError => e
        Haconiwa.__stop_recording
        raise e
      rescue StandardError, HacoDeferredCommand => e
        # A block that needs its commands' output (or calls the shell hook
        # itself): it runs as written.
        Haconiwa.__stop_recording
        @bootstrap = Bootstrap.new
        @bootstrap.__defer(block, [], "#{e.class}: #{e.message}")
      end
      @bootstrap
    end

    def __export
      {
        "name" => @name,
        "command" => @init_command,
        "daemonize" => @daemonize,
        "rootfs" => @chroot_to,
        "namespaces" => @namespace.unshared,
        "uid_map" => @namespace.uid_map,
        "gid_map" => @namespace.gid_map,
        "rootfs_owner" => @rootfs_owner,
        "mounts" => @mounts,
        "network_etc" => @network_etc,
        "independent_mounts" => @independent,
        "cgroup" => @cgroup,
        "bootstrap" => @bootstrap.__export,
        "environment" => @environ,
        "workdir" => @workdir,
        "user" => @user,
        "stop_signal" => @stop_signal,
        "capabilities" => @capabilities.__export,
        "no_new_privs" => @no_new_privs,
        "seccomp" => @seccomp.__export
      }
    end
  end

  def self.define(&block)
    __fail("Haconiwa.define needs a block") unless block
    __fail("Haconiwa.define is called more than once in this file") if @defined
    config = Base.new
    block.call(config)
    config.__check_rootfs_owner
    @defined = config
    config
  end

  def self.__reset(environment, running_bootstrap)
    @defined = nil
    @recorded = nil
    @running_bootstrap = running_bootstrap
    ENV.clear
    environment.each { |k, v| ENV[k] = v }
  end

  def self.__running_bootstrap?
    @running_bootstrap ? true : false
  end

  def self.__start_recording
    @recorded = []
  end

  def self.__recording?
    @recorded ? true : false
  end

  def self.__record_command(command, result)
    @recorded << command
    result
  end

  def self.__stop_recording
    recorded = @recorded || []
    @recorded = nil
    recorded
  end

  def self.__defined
    @defined
  end
end
