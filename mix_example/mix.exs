defmodule MixExample.MixProject do
  use Mix.Project

  def project do
    [
      app: :mix_example,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      deps: deps()
    ]
  end

  def application do
    [
      mod: {MixExample.Application, []},
      extra_applications: [:logger]
    ]
  end

  defp deps do
    [{:py_bridge, path: "../elixir_shim"}]
  end
end
