# frozen_string_literal: true

require "rails/generators"

module Redisse
  module Generators
    # `rails generate redisse:install`: the initializer, the route of the
    # engine, and the import of the browser client, with an import map
    # (config/importmap.rb) or, without one, a module script tag in the
    # application's layout (Sprockets or Propshaft serve the file).
    class InstallGenerator < ::Rails::Generators::Base
      source_root File.expand_path("templates", __dir__)

      desc "Configures redisse: config/initializers/redisse.rb, the engine's route, the browser client's import"

      def create_initializer
        template "initializer.rb", "config/initializers/redisse.rb"
      end

      def mount_engine
        route 'mount Redisse::Engine => "/events"'
      end

      def import_client
        if exists?("config/importmap.rb")
          import_with_importmap
        elsif exists?(LAYOUT)
          insert_into_file LAYOUT, %(    <%= javascript_include_tag "redisse", type: "module" %>\n),
                           before: %r{^[ \t]*</head>}
        else
          say_status :skip, "no import map and no #{LAYOUT}: load redisse.js as a module yourself " \
                            '(javascript_include_tag "redisse", type: "module")', :yellow
        end
      end

      private

      LAYOUT = "app/views/layouts/application.html.erb"
      APPLICATION_JS = "app/javascript/application.js"

      def import_with_importmap
        append_to_file "config/importmap.rb", %(pin "redisse", to: "redisse.js"\n)
        if exists?(APPLICATION_JS)
          append_to_file APPLICATION_JS, %(import "redisse"\n)
        else
          say_status :skip, %(no #{APPLICATION_JS}: add `import "redisse"` to your entry point), :yellow
        end
      end

      def exists?(path)
        File.exist?(File.join(destination_root, path))
      end
    end
  end
end
