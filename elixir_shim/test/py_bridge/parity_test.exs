defmodule PyBridge.ParityTest do
  use ExUnit.Case, async: true

  alias PyBridge.Parity
  alias PyBridge.Parity.{Difference, Report}

  # Worked examples: each pair of outputs differs in one known way, so the
  # expected difference (path, kind, values) is written down by hand.
  describe "compare_outputs/3 on worked examples" do
    test "equal outputs are equal, with nothing to report" do
      output = [%{predictions: [%{label: "a", score: 0.75}, %{label: "b", score: 0.25}]}]

      report = Parity.compare_outputs(output, output)
      assert %Report{equal?: true, differences: [], max_abs_diff: 0.0} = report
      assert report.numbers_compared == 2
    end

    test "a score within the tolerance is equal, and its distance is the largest reported" do
      left = %{predictions: [%{label: "a", score: 0.75}, %{label: "b", score: 0.25}]}
      right = %{predictions: [%{label: "a", score: 0.7}, %{label: "b", score: 0.25}]}

      report = Parity.compare_outputs(left, right, atol: 0.1, rtol: 0.0)
      assert report.equal?
      assert_in_delta report.max_abs_diff, 0.05, 1.0e-12
      assert report.max_diff_path == [:predictions, 0, :score]

      report = Parity.compare_outputs(left, right, atol: 0.01, rtol: 0.0)
      refute report.equal?

      assert [%Difference{path: [:predictions, 0, :score], kind: :number, field: :score}] =
               report.differences
    end

    test "rtol scales with the right-hand value" do
      # |1000.0 - 1000.5| = 0.5 <= 0 + 1.0e-3 * 1000.5, but not <= 1.0e-4 * 1000.5
      assert Parity.compare_outputs(1000.0, 1000.5, atol: 0.0, rtol: 1.0e-3).equal?
      refute Parity.compare_outputs(1000.0, 1000.5, atol: 0.0, rtol: 1.0e-4).equal?
    end

    test "a different label is named with its path" do
      left = [%{predictions: [%{label: "a", score: 0.5}, %{label: "b", score: 0.3}]}]
      right = [%{predictions: [%{label: "a", score: 0.5}, %{label: "c", score: 0.3}]}]

      report = Parity.compare_outputs(left, right)

      assert %Difference{path: [0, :predictions, 1, :label], field: :label, kind: :label} =
               difference = Report.first_difference(report)

      assert {difference.left, difference.right} == {"b", "c"}
      assert Report.format(report) =~ ~s([0, :predictions, 1, :label] label: "b" != "c")
    end

    test "the same labels in another order are one :order difference, scores matched by label" do
      left = [%{label: "a", score: 0.5}, %{label: "b", score: 0.49}]
      right = [%{label: "b", score: 0.5}, %{label: "a", score: 0.49}]

      report = Parity.compare_outputs(left, right, atol: 0.02, rtol: 0.0)

      assert [%Difference{kind: :order, path: [], left: ["a", "b"], right: ["b", "a"]}] =
               report.differences

      # "a" is 0.5 vs 0.49 and "b" 0.49 vs 0.5: both 0.01 apart.
      assert_in_delta report.max_abs_diff, 0.01, 1.0e-12
      assert Parity.compare_outputs(left, right, atol: 0.02, ignore: [:order]).equal?
    end

    test "missing keys and list lengths are structure differences" do
      left = %{results: [%{text: "x", start: 0}], extra: 1}
      right = %{results: [%{text: "x", start: 0}, %{text: "y", start: 1}]}

      assert [keys, length] = Parity.compare_outputs(left, right).differences
      assert %Difference{kind: :keys, path: [], left: [:extra], right: []} = keys

      assert %Difference{kind: :length, path: [:results], field: :results, left: 1, right: 2} =
               length
    end

    test "offsets and text are compared exactly" do
      left = %{entities: [%{start: 0, end: 4, phrase: "café", label: "LOC", score: 0.9}]}
      right = %{entities: [%{start: 0, end: 5, phrase: "cafe", label: "LOC", score: 0.9}]}

      assert [
               %Difference{path: [:entities, 0, :end], kind: :offset, left: 4, right: 5},
               %Difference{
                 path: [:entities, 0, :phrase],
                 kind: :text,
                 left: "café",
                 right: "cafe"
               }
             ] = Parity.compare_outputs(left, right).differences
    end

    test "values of different kinds are a :structure difference" do
      assert [%Difference{kind: :structure, path: [:chunks]}] =
               Parity.compare_outputs(%{chunks: []}, %{chunks: %{}}).differences
    end

    test "tensors: elements within the tolerance, the worst element beyond it, shape and type" do
      a = PyBridge.Tensor.from_list([[1.0, 2.0], [3.0, 4.0]], {:f, 32})
      b = PyBridge.Tensor.from_list([[1.0, 2.5], [3.0, 4.25]], {:f, 32})

      report = Parity.compare_outputs(%{embedding: a}, %{embedding: b}, atol: 0.1, rtol: 0.0)

      assert [%Difference{kind: :tensor, path: [:embedding], field: :embedding} = difference] =
               report.differences

      assert {difference.left, difference.right} == {2.0, 2.5}

      assert difference.detail =~
               "2 of 4 elements beyond the tolerance; the worst at flat index 1"

      assert report.max_abs_diff == 0.5
      assert report.numbers_compared == 4
      assert Parity.compare_outputs(a, b, atol: 0.5).equal?

      c = PyBridge.Tensor.from_list([1.0, 2.0, 3.0, 4.0], {:f, 32})

      assert [%Difference{kind: :shape, left: {2, 2}, right: {4}}] =
               Parity.compare_outputs(a, c).differences

      d = PyBridge.Tensor.from_list([[1.0, 2.0], [3.0, 4.0]], {:bf, 16})

      assert [%Difference{kind: :type, left: {:f, 32}, right: {:bf, 16}}] =
               Parity.compare_outputs(a, d).differences

      assert Parity.compare_outputs(a, d, ignore: [:type]).equal?
    end

    test "non-finite values are equal only to themselves" do
      nan = PyBridge.Tensor.from_list([:nan, 1.0], {:f, 32})
      one = PyBridge.Tensor.from_list([1.0, 1.0], {:f, 32})

      assert Parity.compare_outputs(nan, nan).equal?

      assert [%Difference{kind: :tensor, left: :nan, right: 1.0}] =
               Parity.compare_outputs(nan, one).differences
    end

    test "options are validated" do
      assert_raise ArgumentError, ~r/unknown keys \[:tolerance\]/, fn ->
        Parity.compare_outputs(1, 1, tolerance: 1)
      end

      assert_raise ArgumentError, ~r/expected :atol to be a non-negative number/, fn ->
        Parity.compare_outputs(1, 1, atol: -1)
      end

      assert_raise ArgumentError, ~r/expected :ignore to be a list of difference kinds/, fn ->
        Parity.compare_outputs(1, 1, ignore: [:colour])
      end
    end
  end

  describe "compare/4 with servings as functions" do
    test "a serving that raises is a :raised difference; two that raise alike agree" do
      fine = fn inputs -> Enum.map(inputs, &String.length/1) end
      broken = fn _inputs -> raise ArgumentError, "invalid input, expected a string" end

      assert [%Difference{kind: :raised, path: [], right: {:raised, %ArgumentError{}}}] =
               Parity.compare(fine, broken, ["a"]).differences

      assert Parity.compare(broken, broken, ["a"]).equal?
    end

    test "assert_parity/4 refuses to compare no inputs at all" do
      same = fn inputs -> inputs end

      assert_raise ArgumentError, "expected inputs to compare, got: []", fn ->
        Parity.assert_parity(same, same, [])
      end
    end

    test "a value that is not a serving raises ArgumentError" do
      assert_raise ArgumentError, ~r/expected a serving to be a %PyBridge.Serving\{\}/, fn ->
        Parity.compare("serving", fn x -> x end, ["a"])
      end
    end
  end
end
