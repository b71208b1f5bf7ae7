# frozen_string_literal: true

require "rbconfig"
require "tmpdir"

# The gem as users get it: built, installed (which compiles the extension
# with cargo, without the rb_sys gem), and required from another folder.
RSpec.describe "The redisse gem package" do
  root = File.expand_path("..", __dir__)

  # Compiling the extension takes minutes on a cold cache.
  def run!(env, *command, chdir:)
    output, status = run_command(*command, env: env, chdir: chdir, timeout: 900)
    expect(status).to be_success, "#{command.join(' ')} failed:\n#{output}"
    output
  end

  it "installs with its native extension and loads from any folder" do
    Dir.mktmpdir("redisse-gem") do |dir|
      gem_file = File.join(dir, "redisse.gem")
      install_dir = File.join(dir, "gems")
      # Dependencies compiled once and kept between runs; the gem's own
      # crates are compiled from the installed sources.
      # The installed gems (Debian's rack) stay visible beside the new folder.
      runtime = { "GEM_PATH" => [install_dir, *Gem.path].join(File::PATH_SEPARATOR), "RUBYLIB" => nil, "RUBYOPT" => nil }
      build = runtime.merge("GEM_HOME" => install_dir, "CARGO_TARGET_DIR" => File.join(root, "target", "gem-install"))
      run!(build, "gem", "build", "redisse.gemspec", "--output", gem_file, chdir: root)
      run!(build, "gem", "install", "--local", "--no-document", gem_file, chdir: dir)

      script = 'require "redisse"; print Redisse::VERSION, " ", ' \
               'Redisse::ServerSentEvents.server_sent_event("hi", type: :t, id: 1).inspect, " ", ' \
               '$LOADED_FEATURES.grep(/redisse\.so/).first'
      output = run!(runtime, RbConfig.ruby, "-e", script, chdir: dir)
      expect(output).to start_with(%(#{Redisse::VERSION} "id: 1\\nevent: t\\ndata: hi\\n\\n"))
      expect(output).to include(install_dir)

      help = run!(runtime, File.join(install_dir, "bin", "redisse"), "--help", chdir: dir)
      expect(help).to include("--redis")
    end
  end
end
