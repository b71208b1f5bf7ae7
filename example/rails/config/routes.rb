# frozen_string_literal: true

Rails.application.routes.draw do
  root "events#index"
  # Answers with an X-Accel-Redirect that nginx serves from the redisse
  # server (see ../nginx.conf).
  get "/events" => Redisse.redirect_endpoint
  post "/publish" => "events#publish"
end
