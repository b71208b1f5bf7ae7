# frozen_string_literal: true

require "fileutils"
require "tmpdir"
require "generators/redisse/install/install_generator"

# `rails generate redisse:install` on the files of a new application: with
# an import map (Rails 7 and later), and without (Sprockets, Rails 6.1).
RSpec.describe Redisse::Generators::InstallGenerator do
  around do |example|
    Dir.mktmpdir("redisse-generator") do |root|
      @root = root
      FileUtils.mkdir_p(File.join(root, "config"))
      File.write(File.join(root, "config", "routes.rb"), "Rails.application.routes.draw do\nend\n")
      example.run
    end
  end

  def write(path, content)
    FileUtils.mkdir_p(File.dirname(File.join(@root, path)))
    File.write(File.join(@root, path), content)
  end

  def read(path)
    File.read(File.join(@root, path))
  end

  def generate
    described_class.start(["--quiet"], destination_root: @root)
  end

  it "writes the initializer and mounts the engine at /events" do
    generate

    expect(read("config/initializers/redisse.rb")).to include("Redisse.channels do |env|")
    expect(read("config/routes.rb")).to include(%(mount Redisse::Engine => "/events"))
  end

  it "adds the client to the layout as a module, without an import map" do
    write("app/views/layouts/application.html.erb", "<html>\n  <head>\n  </head>\n</html>\n")

    generate

    expect(read("app/views/layouts/application.html.erb"))
      .to eq %(<html>\n  <head>\n    <%= javascript_include_tag "redisse", type: "module" %>\n  </head>\n</html>\n)
  end

  it "pins the client and imports it, with an import map" do
    write("config/importmap.rb", %(pin "application"\n))
    write("app/javascript/application.js", %(import "@hotwired/turbo-rails"\n))
    write("app/views/layouts/application.html.erb", "<html>\n  <head>\n  </head>\n</html>\n")

    generate

    expect(read("config/importmap.rb")).to eq %(pin "application"\npin "redisse", to: "redisse.js"\n)
    expect(read("app/javascript/application.js")).to eq %(import "@hotwired/turbo-rails"\nimport "redisse"\n)
    expect(read("app/views/layouts/application.html.erb")).not_to include("redisse")
  end

  it "loads the initializer it writes" do
    generate
    redisse = Module.new { extend Redisse }
    initializer = read("config/initializers/redisse.rb").gsub(/^Redisse\./, "self.")

    redisse.instance_eval(initializer)

    expect(redisse.channels({})).to eq ["global"]
  end
end
