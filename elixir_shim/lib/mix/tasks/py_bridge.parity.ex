defmodule Mix.Tasks.PyBridge.Parity do
  @shortdoc "Compares two models' answers to the same inputs, for one task"

  @moduledoc """
  Compares two local models' answers to the same inputs, for one task.

      $ mix py_bridge.parity text_classification models/sentiment models/sentiment-v2 \\
          --input "I love it" --input "Not my cup of tea" --atol 1e-3
      outputs differ: 1 difference(s) (atol 0.001, rtol 0.0001; largest |left - right| ...)
      first difference: :label at [1, :predictions, 0, :label]
        [1, :predictions, 0, :label] label: "neutral" != "negative"

  Each directory is loaded with `PyBridge.load_model/2` and served by its
  own worker; the task is a constructor of `PyBridge.Text` that takes a
  model and a tokenizer (`text_classification`, `text_embedding`,
  `token_classification`, `fill_mask`, ...). The command exits with a
  non-zero status when the outputs differ, so it can gate a release.

  To compare a model with itself in another dtype, give the same
  directory twice with `--type-b bf16`.

  ## Options

    * `--input TEXT` - an input; repeat it for several.
    * `--inputs FILE` - a file with one input per line.
    * `--type-a TYPE`, `--type-b TYPE` - the dtype each model loads in
      (`f32`, `f16`, `bf16`, `f64`). Default `f32`.
    * `--atol FLOAT`, `--rtol FLOAT` - the tolerances of
      `PyBridge.Parity.compare/4`.
    * `--ignore KIND` - a kind of difference to leave out (`order`, `type`,
      ...); repeat it for several.
    * `--bridge-command PATH` - the `bridge` program, when the application
      config does not name it (see `PyBridge.Command`).
  """

  use Mix.Task

  @switches [
    input: :keep,
    inputs: :string,
    type_a: :string,
    type_b: :string,
    atol: :float,
    rtol: :float,
    ignore: :keep,
    bridge_command: :string
  ]

  @impl true
  def run(args) do
    {opts, positional} = OptionParser.parse!(args, strict: @switches)

    {task, dir_a, dir_b} =
      case positional do
        [task, dir_a, dir_b] -> {task, dir_a, dir_b}
        _ -> Mix.raise("usage: mix py_bridge.parity TASK DIR_A DIR_B [--input TEXT]... [options]")
      end

    inputs = inputs!(opts)
    Mix.Task.run("app.start")
    task = task!(task)

    serving_a = serving!(task, dir_a, opts[:type_a], opts[:bridge_command])
    serving_b = serving!(task, dir_b, opts[:type_b], opts[:bridge_command])

    compare_options =
      opts
      |> Keyword.take([:atol, :rtol])
      |> Keyword.put(:ignore, opts |> Keyword.get_values(:ignore) |> Enum.map(&String.to_atom/1))

    report = PyBridge.Parity.compare(serving_a, serving_b, inputs, compare_options)
    Mix.shell().info(PyBridge.Parity.Report.format(report))

    unless report.equal? do
      Mix.raise("#{dir_a} and #{dir_b} answer differently")
    end

    report
  end

  defp inputs!(opts) do
    from_file =
      case opts[:inputs] do
        nil -> []
        path -> path |> File.read!() |> String.split(["\r\n", "\n"], trim: true)
      end

    case Keyword.get_values(opts, :input) ++ from_file do
      [] -> Mix.raise("no inputs: give --input TEXT (repeatable) or --inputs FILE")
      inputs -> inputs
    end
  end

  defp task!(name) do
    task = String.to_atom(name)
    Code.ensure_loaded!(PyBridge.Text)

    # Constructors of (model_info, tokenizer, opts \\ []) export arity 2.
    unless function_exported?(PyBridge.Text, task, 2) do
      Mix.raise(
        "unknown task #{inspect(name)}: expected a PyBridge.Text constructor that takes a model and a tokenizer"
      )
    end

    task
  end

  defp serving!(task, dir, type, command) do
    load_options =
      if(type, do: [type: String.to_atom(type)], else: []) ++
        if(command, do: [bridge_command: command], else: [])

    with {:ok, model_info} <- PyBridge.load_model({:local, dir}, load_options),
         {:ok, tokenizer} <-
           PyBridge.load_tokenizer({:local, dir}, Keyword.take(load_options, [:bridge_command])) do
      apply(PyBridge.Text, task, [model_info, tokenizer])
    else
      {:error, message} -> Mix.raise("cannot load #{dir}: #{message}")
    end
  end
end
