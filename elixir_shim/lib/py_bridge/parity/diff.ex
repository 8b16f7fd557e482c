defmodule PyBridge.Parity.Diff do
  @moduledoc false
  # Walks two outputs side by side and collects every difference, with its
  # path, in output order: list items by index, map keys sorted. Floats and
  # tensor elements are equal within atol + rtol * |right|, as in
  # Nx.all_close/3; everything else must be equal exactly.

  alias PyBridge.Parity.{Difference, Report}
  alias PyBridge.Tensor

  @label_keys [:label, :token]
  @offset_keys [:start, :end]
  @non_finite [:nan, :infinity, :neg_infinity]

  @spec run(term(), term(), float(), float()) :: Report.t()
  def run(left, right, atol, rtol) do
    state = %{diffs: [], max: 0.0, at: nil, count: 0, atol: atol, rtol: rtol}
    state = walk(left, right, [], state)

    %Report{
      equal?: state.diffs == [],
      differences: Enum.reverse(state.diffs),
      max_abs_diff: state.max,
      max_diff_path: state.at,
      numbers_compared: state.count,
      atol: atol,
      rtol: rtol
    }
  end

  defp walk(left, right, path, state) do
    cond do
      tensor?(left) and tensor?(right) ->
        tensors(Tensor.to_wire(left), Tensor.to_wire(right), path, state)

      plain_map?(left) and plain_map?(right) ->
        maps(left, right, path, state)

      is_list(left) and is_list(right) ->
        lists(left, right, path, state)

      number?(left) and number?(right) ->
        numbers(left, right, path, state)

      is_binary(left) and is_binary(right) ->
        if left == right,
          do: state,
          else: add(state, Difference.new(path, string_kind(path), left, right))

      left === right ->
        state

      kind(left) == kind(right) ->
        add(state, Difference.new(path, :value, left, right))

      true ->
        detail = "#{kind(left)} on the left, #{kind(right)} on the right"
        add(state, Difference.new(path, :structure, left, right, detail))
    end
  end

  defp maps(left, right, path, state) do
    left_keys = left |> Map.keys() |> Enum.sort()
    right_keys = right |> Map.keys() |> Enum.sort()

    state =
      if left_keys == right_keys,
        do: state,
        else:
          add(
            state,
            Difference.new(path, :keys, left_keys -- right_keys, right_keys -- left_keys)
          )

    for key <- left_keys, Map.has_key?(right, key), reduce: state do
      state -> walk(Map.fetch!(left, key), Map.fetch!(right, key), path ++ [key], state)
    end
  end

  defp lists(left, right, path, state) do
    state =
      if length(left) == length(right),
        do: state,
        else: add(state, Difference.new(path, :length, length(left), length(right)))

    case reordered(left, right) do
      {left_labels, right_labels, pairs} ->
        detail = "the same labels in another order"
        state = add(state, Difference.new(path, :order, left_labels, right_labels, detail))

        for {index, l, r} <- pairs, reduce: state do
          state -> walk(l, r, path ++ [index], state)
        end

      nil ->
        left
        |> Enum.zip(right)
        |> Enum.with_index()
        |> Enum.reduce(state, fn {{l, r}, index}, state -> walk(l, r, path ++ [index], state) end)
    end
  end

  # Predictions are lists of maps keyed by a label; when both sides hold the
  # same labels in another order, the order is one difference and each
  # prediction is compared with its namesake, not its neighbour.
  defp reordered(left, right) do
    Enum.find_value(@label_keys, fn key ->
      with left_labels when is_list(left_labels) <- labels(left, key),
           right_labels when is_list(right_labels) <- labels(right, key),
           true <- left_labels != right_labels,
           true <- Enum.sort(left_labels) == Enum.sort(right_labels),
           true <- length(Enum.uniq(left_labels)) == length(left_labels) do
        by_label = Map.new(right, &{Map.fetch!(&1, key), &1})

        pairs =
          left
          |> Enum.with_index()
          |> Enum.map(fn {l, index} -> {index, l, Map.fetch!(by_label, Map.fetch!(l, key))} end)

        {left_labels, right_labels, pairs}
      else
        _ -> nil
      end
    end)
  end

  defp labels(list, key) do
    if list != [] and
         Enum.all?(list, &(plain_map?(&1) and is_binary(Map.get(&1, key)))),
       do: Enum.map(list, &Map.fetch!(&1, key))
  end

  defp numbers(left, right, path, state) when is_integer(left) and is_integer(right) do
    cond do
      left == right -> state
      List.last(path) in @offset_keys -> add(state, Difference.new(path, :offset, left, right))
      true -> add(state, Difference.new(path, :number, left, right))
    end
  end

  defp numbers(left, right, path, state) do
    state = %{state | count: state.count + 1}

    case close(left, right, state) do
      {:ok, diff} ->
        track(state, diff, path)

      {:error, diff} ->
        state
        |> track(diff, path)
        |> add(Difference.new(path, :number, left, right, beyond(diff, right, state)))
    end
  end

  defp tensors(left, right, path, state) do
    cond do
      left.shape != right.shape ->
        add(state, Difference.new(path, :shape, left.shape, right.shape))

      true ->
        state =
          if left.type == right.type,
            do: state,
            else: add(state, Difference.new(path, :type, left.type, right.type))

        elements(left, right, path, state)
    end
  end

  defp elements(left, right, path, state) do
    # {index, beyond, worst beyond as {diff, index, l, r}, largest diff}
    initial = {0, 0, nil, nil}

    {size, beyond, worst, largest} =
      Enum.zip_reduce(
        Tensor.to_flat_list(left),
        Tensor.to_flat_list(right),
        initial,
        fn l, r, {index, beyond, worst, largest} ->
          case close(l, r, state) do
            {:ok, diff} ->
              {index + 1, beyond, worst, max_diff(largest, diff)}

            {:error, diff} ->
              worst =
                if worst == nil or (is_float(diff) and diff > elem(worst, 0)),
                  do: {diff, index, l, r},
                  else: worst

              {index + 1, beyond + 1, worst, max_diff(largest, diff)}
          end
        end
      )

    state = %{state | count: state.count + size}
    state = if largest, do: track(state, largest, path), else: state

    case worst do
      nil ->
        state

      {_diff, index, l, r} ->
        detail =
          "#{beyond} of #{size} elements beyond the tolerance; the worst at flat index #{index}"

        add(state, Difference.new(path, :tensor, l, r, detail))
    end
  end

  defp max_diff(largest, diff) when is_float(diff) and (largest == nil or diff > largest),
    do: diff

  defp max_diff(largest, _diff), do: largest

  # Non-finite values are equal only to themselves, and have no distance.
  defp close(left, right, _state) when left in @non_finite or right in @non_finite do
    if left === right, do: {:ok, 0.0}, else: {:error, :non_finite}
  end

  defp close(left, right, state) do
    diff = abs(left - right) * 1.0
    if diff <= state.atol + state.rtol * abs(right), do: {:ok, diff}, else: {:error, diff}
  end

  defp beyond(:non_finite, _right, _state), do: "a non-finite value"

  defp beyond(diff, right, state),
    do: "|left - right| = #{diff} > #{state.atol + state.rtol * abs(right)}"

  defp track(state, diff, path) when is_float(diff) do
    if diff > state.max or state.at == nil,
      do: %{state | max: max(diff, state.max), at: path},
      else: state
  end

  defp track(state, _diff, _path), do: state

  defp add(state, difference), do: %{state | diffs: [difference | state.diffs]}

  defp string_kind(path) do
    if Enum.find(Enum.reverse(path), &is_atom/1) in @label_keys, do: :label, else: :text
  end

  defp tensor?(%Tensor{}), do: true
  defp tensor?(%{__struct__: Nx.Tensor}), do: true
  defp tensor?(_other), do: false

  defp plain_map?(value), do: is_map(value) and not is_struct(value)

  defp number?(value), do: is_number(value) or value in @non_finite

  defp kind(value) when is_map(value) and not is_struct(value), do: :map
  defp kind(value) when is_list(value), do: :list
  defp kind(value) when is_binary(value), do: :string
  defp kind(value) when is_number(value), do: :number
  defp kind(value) when is_atom(value), do: :atom
  defp kind(value) when is_tuple(value), do: :tuple
  defp kind(%{__struct__: module}), do: module
  defp kind(_value), do: :other
end
