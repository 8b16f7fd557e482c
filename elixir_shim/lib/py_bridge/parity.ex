defmodule PyBridge.Parity do
  @moduledoc """
  Proves two servings answer alike before you switch from one to the other.

  Run the same inputs through a PyBridge serving and the native
  `Nx.Serving` Bumblebee builds for the same model (or through two PyBridge
  servings: two dtypes, two model revisions), and get every difference:

      report = PyBridge.Parity.compare(bridge_serving, bumblebee_serving, texts, atol: 1.0e-3)
      report.equal?
      #=> false
      PyBridge.Parity.Report.first_difference(report)
      #=> %PyBridge.Parity.Difference{path: [0, :predictions, 1, :label], field: :label,
      #=>   kind: :label, left: "neutral", right: "negative"}

  Outputs are compared as Bumblebee shapes them: structure (map keys, list
  lengths), labels and their order, byte offsets, text, and numbers within
  the tolerances. Tensors are compared element by element, whether they are
  `Nx.Tensor`s or `PyBridge.Tensor`s, and the largest difference found is
  reported even when it is within the tolerance.

  In a test, `assert_parity/4` fails with the report:

      test "the native serving answers as the bridge did" do
        PyBridge.Parity.assert_parity(bridge_serving, bumblebee_serving, @texts, atol: 1.0e-4)
      end

  From a shell, `mix py_bridge.parity` compares two local model directories.

  ## Servings

  Each serving may be:

    * a `%PyBridge.Serving{}`, run with `PyBridge.Serving.run/2`;
    * an `%Nx.Serving{}` (detected at run time; PyBridge does not depend on
      Nx), run with `Nx.Serving.run/2`;
    * the name of a running serving (`atom`, `{:local, atom}` or
      `{:distributed, atom}`), run with `PyBridge.Serving.batched_run/2`
      when it is a PyBridge serving and `Nx.Serving.batched_run/2` otherwise;
    * a function of one argument, given the inputs.

  `inputs` go to each serving as they are: a list is one batch and gives a
  list of outputs, so paths start with the item's index. A streaming
  serving returns a stream; compare what it yields by passing a function,
  `fn input -> serving |> PyBridge.Serving.run(input) |> Enum.to_list() end`.
  """

  alias PyBridge.Parity.{Diff, Difference, MismatchError, Report}

  @type serving ::
          PyBridge.Serving.t()
          | struct()
          | PyBridge.Serving.name()
          | (term() -> term())

  @options [atol: 1.0e-4, rtol: 1.0e-4, ignore: []]

  @doc """
  Runs `inputs` through both servings and compares the outputs.

  A serving that raises or exits is part of the answer: when both raise
  the same exception with the same message they agree, otherwise the
  report holds one `:raised` difference.

  ## Options

    * `:atol` - the absolute tolerance for floats and tensor elements.
      Defaults to `1.0e-4`.
    * `:rtol` - the relative tolerance: two numbers are equal when
      `|left - right| <= atol + rtol * |right|`. Defaults to `1.0e-4`.
    * `:ignore` - kinds of difference to leave out of the report, such as
      `[:order]` when near-ties may swap, or `[:type]` when one side
      returns another float type (see `PyBridge.Parity.Difference`).
      Defaults to `[]`.
  """
  @spec compare(serving(), serving(), term(), keyword()) :: Report.t()
  def compare(left, right, inputs, opts \\ []) do
    opts = validate!(opts)

    case {outcome(left, inputs), outcome(right, inputs)} do
      {{:ok, left}, {:ok, right}} ->
        compare_outputs(left, right, opts)

      {left, right} ->
        raised(left, right, opts)
    end
  end

  @doc """
  Compares two outputs already computed (for example, one saved from an
  earlier run). Takes the options of `compare/4`.
  """
  @spec compare_outputs(term(), term(), keyword()) :: Report.t()
  def compare_outputs(left, right, opts \\ []) do
    opts = validate!(opts)

    left
    |> Diff.run(right, opts[:atol] * 1.0, opts[:rtol] * 1.0)
    |> drop_ignored(opts[:ignore])
  end

  @doc """
  Like `compare/4`, but raises when the outputs differ, and returns the
  report when they do not.

  Under ExUnit it raises `ExUnit.AssertionError`, so a failing test shows
  the report; otherwise `PyBridge.Parity.MismatchError`.
  """
  @spec assert_parity(serving(), serving(), term(), keyword()) :: Report.t()
  def assert_parity(left, right, inputs, opts \\ []) do
    # A check that compares nothing would pass and prove nothing.
    if inputs == [] do
      raise ArgumentError, "expected inputs to compare, got: []"
    end

    report = compare(left, right, inputs, opts)

    cond do
      report.equal? ->
        report

      Code.ensure_loaded?(ExUnit.AssertionError) ->
        # apply/3 keeps ExUnit out of this library's compile-time dependencies.
        raise apply(ExUnit.AssertionError, :exception, [[message: Report.format(report)]])

      true ->
        raise MismatchError, report: report
    end
  end

  @doc false
  # Runs one serving on `inputs`, whatever form the serving takes.
  @spec run(serving(), term()) :: term()
  def run(%PyBridge.Serving{} = serving, inputs), do: PyBridge.Serving.run(serving, inputs)

  def run(%{__struct__: Nx.Serving} = serving, inputs),
    do: apply(Nx.Serving, :run, [serving, inputs])

  def run(fun, inputs) when is_function(fun, 1), do: fun.(inputs)

  def run(name, inputs) when is_atom(name) or is_tuple(name) do
    if bridge_serving?(name) or not Code.ensure_loaded?(Nx.Serving),
      do: PyBridge.Serving.batched_run(name, inputs),
      else: apply(Nx.Serving, :batched_run, [name, inputs])
  end

  def run(other, _inputs) do
    raise ArgumentError,
          "expected a serving to be a %PyBridge.Serving{}, an %Nx.Serving{}, the name of a " <>
            "running serving or a function of one argument, got: #{inspect(other, limit: 10)}"
  end

  defp bridge_serving?({scope, name}) when scope in [:local, :distributed],
    do: bridge_serving?(name)

  # Here, or on another node of the cluster.
  defp bridge_serving?(name) when is_atom(name) do
    :persistent_term.get({PyBridge.Serving, name}, nil) != nil or
      :pg.get_members(PyBridge.Serving.Distributed.scope(), name) != []
  end

  defp bridge_serving?(_name), do: false

  defp outcome(serving, inputs) do
    {:ok, run(serving, inputs)}
  rescue
    exception in ArgumentError ->
      # A serving in no known form is the caller's mistake, not a difference.
      if String.starts_with?(Exception.message(exception), "expected a serving to be"),
        do: reraise(exception, __STACKTRACE__),
        else: {:raised, exception}

    exception ->
      {:raised, exception}
  catch
    :exit, reason -> {:exited, reason}
  end

  defp raised(left, right, opts) do
    if same_failure?(left, right) do
      %Report{atol: opts[:atol] * 1.0, rtol: opts[:rtol] * 1.0}
    else
      difference =
        Difference.new([], :raised, left, right, "the servings did not both answer alike")

      drop_ignored(
        %Report{
          equal?: false,
          differences: [difference],
          atol: opts[:atol] * 1.0,
          rtol: opts[:rtol] * 1.0
        },
        opts[:ignore]
      )
    end
  end

  defp same_failure?({:raised, %module{} = left}, {:raised, %module{} = right}),
    do: Exception.message(left) == Exception.message(right)

  defp same_failure?({:exited, reason}, {:exited, reason}), do: true
  defp same_failure?(_left, _right), do: false

  defp drop_ignored(report, []), do: report

  defp drop_ignored(report, ignore) do
    differences = Enum.reject(report.differences, &(&1.kind in ignore))
    %{report | differences: differences, equal?: differences == []}
  end

  defp validate!(opts) do
    opts = Keyword.validate!(opts, @options)

    for key <- [:atol, :rtol] do
      unless is_number(opts[key]) and opts[key] >= 0 do
        raise ArgumentError,
              "expected #{inspect(key)} to be a non-negative number, got: #{inspect(opts[key])}"
      end
    end

    unknown = List.wrap(opts[:ignore]) -- Difference.kinds()

    unless is_list(opts[:ignore]) and unknown == [] do
      raise ArgumentError,
            "expected :ignore to be a list of difference kinds (#{Enum.map_join(Difference.kinds(), ", ", &inspect/1)}), " <>
              "got: #{inspect(opts[:ignore])}"
    end

    opts
  end
end
