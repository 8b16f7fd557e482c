defmodule Mix.Tasks.PyBridge.NativeCheck do
  @shortdoc "Says whether Bumblebee runs a model natively, and what to switch to"

  @moduledoc """
  Says whether Bumblebee runs a model natively, and what to switch to.

      $ mix py_bridge.native_check --local models/sentiment
      BertForSequenceClassification is supported natively by Bumblebee 0.7.0.
        module:        Bumblebee.Text.Bert
        architecture:  :for_sequence_classification
        switch to:     Bumblebee.Text.text_classification/3
                       Bumblebee.Text.cross_encoding/3
                       Bumblebee.Text.zero_shot_classification/4

      $ mix py_bridge.native_check --hf microsoft/some-deberta-model --offline
      Not yet: DebertaV2ForSequenceClassification is not among the 145 classes Bumblebee 0.7.0 loads
        ...

  Only `config.json` is read (the hub repository is fetched into the
  `huggingface_hub` cache when it is not there). The answer is the one
  `PyBridge.native_check/2` gives.

  ## Options

    * `--local DIR` - a local model directory.
    * `--hf ID` - a Hugging Face hub repository, with `--revision REV`,
      `--subdir DIR`, `--cache-dir DIR` and `--offline`.
    * `--architecture NAME` - the head you load the model with
      (`for_token_classification`...), when it is not the class's own.
    * `--bridge-command PATH` - the `bridge` program, when the application
      config does not name it (see `PyBridge.Command`).
  """

  use Mix.Task

  @switches [
    local: :string,
    hf: :string,
    revision: :string,
    subdir: :string,
    cache_dir: :string,
    offline: :boolean,
    architecture: :string,
    bridge_command: :string
  ]

  @impl true
  def run(args) do
    {opts, rest} = OptionParser.parse!(args, strict: @switches)

    if rest != [] do
      Mix.raise("unexpected arguments #{inspect(rest)}; usage: #{usage()}")
    end

    repository = repository!(opts)
    Mix.Task.run("app.config")

    load_options =
      Enum.flat_map(opts, fn
        {:architecture, name} -> [architecture: String.to_atom(name)]
        {:bridge_command, command} -> [bridge_command: command]
        _hub_option -> []
      end)

    case PyBridge.native_check(repository, load_options) do
      {:error, message} -> Mix.raise(message)
      answer -> Mix.shell().info(PyBridge.NativeCheck.format(answer))
    end
  end

  @doc false
  # The repository forms of `PyBridge.load_model/2`, from the command line.
  @spec repository!(keyword()) :: PyBridge.repository()
  def repository!(opts) do
    hub_options =
      opts
      |> Keyword.take([:revision, :subdir, :cache_dir, :offline])

    case {opts[:local], opts[:hf]} do
      {dir, nil} when is_binary(dir) and hub_options == [] ->
        {:local, dir}

      {nil, id} when is_binary(id) ->
        {:hf, id, hub_options}

      _ ->
        Mix.raise("expected either --local DIR or --hf ID (with hub options); usage: #{usage()}")
    end
  end

  defp usage,
    do:
      "mix py_bridge.native_check (--local DIR | --hf ID [--revision REV] [--subdir DIR] " <>
        "[--cache-dir DIR] [--offline]) [--architecture NAME] [--bridge-command PATH]"
end
