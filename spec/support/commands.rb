# frozen_string_literal: true

require "tempfile"

# The one way the specs run a command to its end (redis-cli, gem, bundle,
# nginx -t): its output captured, and the time it may take bounded. Servers
# that keep running are LifelineProcesses instead.
module Commands
  module_function

  # Runs the command with stdin closed; after `timeout` seconds, kills it
  # and whatever it started (its process group) and fails.
  # @return [Array(String, Process::Status)] its output (stdout and stderr) and status
  def run_command(*command, timeout:, env: {}, chdir: Dir.pwd, unsetenv_others: false)
    Tempfile.create("spec-command") do |output|
      pid = Process.spawn(env, *command, chdir: chdir, unsetenv_others: unsetenv_others,
                                         in: File::NULL, out: output, err: [:child, :out], pgroup: true)
      waiter = Process.detach(pid)
      unless waiter.join(timeout)
        Process.kill("KILL", -pid)
        waiter.join
        raise "`#{command.join(' ')}` did not end within #{timeout} s; its output:\n#{File.read(output.path)}"
      end

      [File.read(output.path), waiter.value]
    end
  end
end
